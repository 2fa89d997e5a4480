# What a credential step reads: its marker, its value's attributes and digest (the installed value after the header
# it was sealed with: the envelope's digest when nobody changed it), its generations (names C-quoted by ls).
# values: N STATE GENS TARGET
if [ -f "$STATE/$N.meta" ]; then zv meta "$(cat "$STATE/$N.meta")"; fi
if [ -f "$TARGET" ]; then
  zv stat "$(stat -L -c '%a %U %G' -- "$TARGET")"
  if [ -f "$STATE/$N.hdr" ]; then zc_v=$(cat -- "$STATE/$N.hdr" "$TARGET" | sha256sum); zv value "${zc_v%% *}"; fi
fi
zv gens "$(ls --quoting-style=c -- "$GENS/$N" 2>/dev/null)"
