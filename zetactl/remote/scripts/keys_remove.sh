# Drop the lines holding these key blobs (BLOBS: one per line) from a user's authorized keys (zetactl/nodes.py).
# The file is replaced only by a complete rewrite that still holds KEEP (the key just proven; empty: none), so a full
# disk or a failed grep never empties it. Field keys: removed (or absent, no file).
# values: FILE BLOBS KEEP
set -eu
if [ ! -f "$FILE" ]; then zf keys absent; exit 0; fi
t="$FILE.zeta-tmp.$$"
printf '%s\n' "$BLOBS" > "$t.blobs"
rc=0; grep -vF -f "$t.blobs" "$FILE" > "$t" || rc=$?
rm -f "$t.blobs"
[ "$rc" -le 1 ] || { rm -f "$t"; echo "could not rewrite $FILE (grep exit $rc): file left as it was" >&2; exit 1; }
if [ -n "$KEEP" ] && ! grep -qF -- "$KEEP" "$t"; then
  rm -f "$t"; echo "the kept key is missing: file left as it was" >&2; exit 1
fi
chmod --reference="$FILE" "$t"
sync "$t" 2>/dev/null || true
mv -f "$t" "$FILE"
zf keys removed
