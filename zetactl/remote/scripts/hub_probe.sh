# Prove, from the tenant machine, what each hub accepts and refuses (zetactl/hubs/probe.py). A token is read from
# its file into a header file in a private temporary folder (`curl -H @file`): no token is ever in a command line or
# back on the controller. Fields (under $zk): curl (`missing` without curl), and per request INDEX the HTTP status
# (`missing-file` when the token file is not there) and INDEX.served, the tenant an accepting hub named.
# values: WRONG TIMEOUT
set -u
command -v curl >/dev/null 2>&1 || { zv curl missing; exit 0; }
W=$(umask 077; mktemp -d /run/zeta-probe.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$W"' EXIT
chmod 0700 "$W"
printf '%s' "$WRONG" > "$W/wrong"  # a well-formed token registered nowhere (printf is a builtin: never in argv)

# zh_hub INDEX TOKEN-FILE CONTEXT URL (TOKEN-FILE: a path, `@wrong` for the throwaway token, empty for none)
zh_hub() {
  : > "$W/h"
  zh_file=$2
  [ "$zh_file" != @wrong ] || zh_file=$W/wrong
  if [ -n "$zh_file" ]; then
    [ -r "$zh_file" ] || { zv "$1" missing-file; return; }
    { printf 'Authorization: Bearer '; cat "$zh_file"; printf '\n'; } > "$W/h"
  fi
  : > "$W/body"
  zh_code=$(curl -s -o "$W/body" -w '%{http_code}' --max-time "$TIMEOUT" -H @"$W/h" -H "X-Hero-Context: $3" "$4" \
    2>/dev/null) || true
  zv "$1" "${zh_code:-000}"
  zv "$1.served" "$(sed -n 's/.*"tenant": *"\([^"]*\)".*/\1/p' "$W/body" | head -n 1)"
}
