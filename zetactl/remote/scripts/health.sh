# The health sweep's read-only functions (zetactl/health/checks.py builds the script that calls them).

# zh_disks PATH...: field disks, `MOUNTPOINT PERCENT%` per filesystem holding a PATH
zh_disks() {
  zf disks "$(df -P -- "$@" | awk 'NR > 1 && !seen[$6]++ { print $6 " " $5 }')"
}

# zh_file TAG FILE: field TAG, the file (a marker zetactl wrote), when it is there
zh_file() {
  if [ -f "$2" ]; then zf "$1" "$(cat "$2")"; fi
}

# zh_cred INDEX NAME STATE GENS: fields cred<INDEX> (the credential's marker), credlink<INDEX> (where the link at
# its path points), credstat<INDEX> (mode:owner:group of the installed generation's file, or `missing`) and
# credvalue<INDEX> (that file's digest after its sealed header), the file read in zetactl's folder, not via the link
zh_cred() {
  if [ -f "$3/$2.meta" ]; then
    zf "cred$1" "$(cat "$3/$2.meta")"
    zh_g=''; zh_p=''
    while IFS=' ' read -r zh_k zh_v; do
      case "$zh_k" in generation) zh_g=$zh_v ;; path) zh_p=$zh_v ;; esac
    done < "$3/$2.meta"
    zf "credlink$1" "$(readlink -- "$zh_p")"
    zh_f=$4/$2/$zh_g
    if [ -n "$zh_g" ] && [ -f "$zh_f" ] && [ ! -L "$zh_f" ]; then
      zf "credstat$1" "$(stat -c '%a:%U:%G' -- "$zh_f")"
      if [ -f "$3/$2.hdr" ]; then zh_v=$(cat -- "$3/$2.hdr" "$zh_f" | sha256sum); zf "credvalue$1" "${zh_v%% *}"; fi
    else
      zf "credstat$1" missing
    fi
  fi
}

# zh_unit INDEX UNIT: field custom<INDEX>, the unit's active state
zh_unit() {
  zf "custom$1" "$(systemctl is-active -- "$2")"
}

# zh_command INDEX SECONDS COMMAND: field custom<INDEX>, `exit-STATUS` of the operator's read-only command
zh_command() {
  timeout "$2" sh -c "$3" </dev/null >/dev/null 2>&1
  zf "custom$1" "exit-$?"
}
