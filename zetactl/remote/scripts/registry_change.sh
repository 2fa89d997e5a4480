# Change a hub's tenant registry atomically (zetactl/hubs/registry.py): under flock on DIR/.lock (bounded wait),
# copy the records that stay (not matching a DROP pattern, one grep -E pattern per line) into a temp file in the
# same directory, append ADD (records, one per line), fsync, chmod 0600 (chown to the service's user when there
# is one), rename over the registry. Answers field registry, the new file. Only ever holds hashes.
# values: DIR SERVICE WAIT LOCKED DROP ADD
set -eu
umask 077
f=$DIR/registry
mkdir -p "$DIR"
exec 9>>"$DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock -w "$WAIT" 9 || { echo "registry $SERVICE locked by another zetactl" >&2; exit "$LOCKED"; }
else
  echo "flock(1) (util-linux) is missing on this hub host" >&2; exit 1
fi
if [ -e "$f" ] && [ ! -f "$f" ]; then echo "cannot read $f: not a regular file" >&2; exit 1; fi
t=$(mktemp "$DIR/.registry.XXXXXX")
trap 'rm -f "$t" "$t.drop"' EXIT
printf '%s\n' "$DROP" > "$t.drop"
echo "# zeta hub registry v1 ($SERVICE): token_id tenant service sha256 not_after" > "$t"
if [ -f "$f" ]; then
  rc=0; grep -v -E -f "$t.drop" "$f" >> "$t" || rc=$?
  [ "$rc" -le 1 ] || { echo "cannot read $f (grep exit $rc)" >&2; exit 1; }
fi
if [ -n "$ADD" ]; then printf '%s\n' "$ADD" >> "$t"; fi
sync "$t" 2>/dev/null || sync
chmod 0600 "$t"
if id -u "zeta-hub-$SERVICE" >/dev/null 2>&1; then chown "zeta-hub-$SERVICE" "$t"; fi
mv -Tf "$t" "$f"
sync "$DIR" 2>/dev/null || true
zf registry "$(cat "$f")"
