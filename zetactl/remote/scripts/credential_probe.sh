# What a credential step reads: its marker; where the link at its path points; the installed generation file's
# attributes and digest (that file after the header it was sealed with: the envelope's digest when nobody changed
# it); its generations (names C-quoted by ls). The generation file is read in zetactl's own folder (root's), never
# through the link, which may sit in a folder its owner controls.
# values: N STATE GENS TARGET
zc_gen=''
if [ -f "$STATE/$N.meta" ]; then
  zv meta "$(cat "$STATE/$N.meta")"
  while IFS=' ' read -r zc_k zc_v; do [ "$zc_k" != generation ] || zc_gen=$zc_v; done < "$STATE/$N.meta"
fi
zv link "$(readlink -- "$TARGET")"
zc_file=$GENS/$N/$zc_gen
if [ -n "$zc_gen" ] && [ -f "$zc_file" ] && [ ! -L "$zc_file" ]; then
  zv stat "$(stat -c '%a %U %G' -- "$zc_file")"
  if [ -f "$STATE/$N.hdr" ]; then zc_v=$(cat -- "$STATE/$N.hdr" "$zc_file" | sha256sum); zv value "${zc_v%% *}"; fi
fi
zv gens "$(ls --quoting-style=c -- "$GENS/$N" 2>/dev/null)"
