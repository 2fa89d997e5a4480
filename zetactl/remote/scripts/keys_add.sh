# Authorize a key for a user on this node (zetactl/nodes.py): append its line unless its blob is there already,
# through a temp file and a rename, no line dropped or doubled. Field keys: installed or present.
# values: FILE BLOB LINE
set -eu
mkdir -p "$(dirname "$FILE")"
touch "$FILE"
if grep -qF -- "$BLOB" "$FILE"; then zf keys present; else
  t="$FILE.zeta-tmp.$$"
  cp -p "$FILE" "$t"
  [ -z "$(tail -c 1 "$FILE")" ] || echo >> "$t"
  printf '%s\n' "$LINE" >> "$t"
  chmod 0644 "$t"
  mv -f "$t" "$FILE"
  zf keys installed
fi
