# The health sweep's read-only functions (zetactl/health/checks.py builds the script that calls them).

# zh_disks PATH...: field disks, `MOUNTPOINT PERCENT%` per filesystem holding a PATH
zh_disks() {
  zf disks "$(df -P -- "$@" | awk 'NR > 1 && !seen[$6]++ { print $6 " " $5 }')"
}

# zh_file TAG FILE: field TAG, the file (a marker zetactl wrote), when it is there
zh_file() {
  if [ -f "$2" ]; then zf "$1" "$(cat "$2")"; fi
}

# zh_cred INDEX NAME STATE: fields cred<INDEX> (the credential's marker), credstat<INDEX> (mode:owner:group of
# the installed value, or `missing`) and credvalue<INDEX> (the digest of the value after its sealed header)
zh_cred() {
  if [ -f "$3/$2.meta" ]; then
    zf "cred$1" "$(cat "$3/$2.meta")"
    zh_p=$(sed -n 's/^path //p' "$3/$2.meta")
    zf "credstat$1" "$(stat -L -c '%a:%U:%G' -- "$zh_p" || echo missing)"
    if [ -f "$3/$2.hdr" ] && [ -f "$zh_p" ]; then
      zh_v=$(cat -- "$3/$2.hdr" "$zh_p" | sha256sum); zf "credvalue$1" "${zh_v%% *}"
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
