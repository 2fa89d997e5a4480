# What a credential step reads: its marker, its value's attributes, its generations (names C-quoted by ls).
# values: N STATE GENS TARGET
if [ -f "$STATE/$N.meta" ]; then zv meta "$(cat "$STATE/$N.meta")"; fi
if [ -f "$TARGET" ]; then zv stat "$(stat -L -c '%a %U %G' -- "$TARGET")"; fi
zv gens "$(ls --quoting-style=c -- "$GENS/$N" 2>/dev/null)"
