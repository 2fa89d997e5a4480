# Install a sealed credential on this node (after credential_check.sh; the engine runs it under set -e). The
# controller sends only the envelope, ciphertext sealed to this node's host key; the value only ever touches
# tmpfs (/run) and travels as file content.
# values: N ENVELOPE STATE GENS REFUSED AREAS SYSTEM
G=$GENS/$N
mkdir -p "$GENS/../.in" "$G" "$STATE"
chmod 0755 "$GENS/.." "$GENS"
chmod 0700 "$GENS/../.in" "$STATE"
W=$(mktemp -d "$GENS/../.in/XXXXXX")
trap 'rm -rf "$W"' EXIT
refuse() { printf 'refused: %s\n' "$*" >&2; exit "$REFUSED"; }
S=$STATE
printf '%s\n' "$ENVELOPE" | base64 -d > "$W/envelope.age"
command -v age >/dev/null 2>&1 || refuse "the age tool is not installed on this node"
age -d -i /etc/ssh/ssh_host_ed25519_key -o "$W/plain" "$W/envelope.age" 2> "$W/err" \
  || refuse "cannot open the envelope with this node's host key: $(head -c 300 "$W/err")"
me=$(cat /etc/zeta/node-id 2>/dev/null || hostname)
zc_check
chown "$owner:$group" "$W/value" || refuse "owner $owner:$group does not exist on this node"
chmod "$mode" "$W/value"
mv -f "$W/value" "$G/.$gen.tmp" && mv -f "$G/.$gen.tmp" "$G/$gen"
zc_enter "$path"  # the path's own folder: real folders of root or the owner, entered one by one
ln -sfn "$G/$gen" "./.$zc_name.zeta-tmp" && mv -Tf "./.$zc_name.zeta-tmp" "./$zc_name"
cd /
for old in "$G"/*; do  # keep the previous until retired
  old=${old##*/}
  case "$old" in "$gen"|"$cur"|"*") ;; *) rm -f "$G/$old" ;; esac
done
cp "$W/envelope.age" "$STATE/.$N.age.tmp" && mv -f "$STATE/.$N.age.tmp" "$STATE/$N.age"
cp "$W/bound" "$STATE/.$N.hdr.tmp" && mv -f "$STATE/.$N.hdr.tmp" "$STATE/$N.hdr"  # to verify the value later
set -f  # the units' names are split on spaces, never globbed
for unit in $(h units); do  # a unit this node does not have (yet) is no error
  [ "$(systemctl show -p LoadState --value -- "$unit" 2>/dev/null)" = not-found ] && continue
  systemctl try-restart -- "$unit"
done
set +f
# the marker last: a failed restart (or a cut connection) makes the next run install and restart again
{ printf 'generation %s\ndigest %s\nnot-after %s\npath %s\ninstalled %s\n' "$gen" "$d" "$na" "$path" \
    "$(date +%s)"; } > "$STATE/.$N.meta.tmp" && mv -f "$STATE/.$N.meta.tmp" "$STATE/$N.meta"
echo "installed $N generation $gen"
