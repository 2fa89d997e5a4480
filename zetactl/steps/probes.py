"""The sh functions every probe script starts with (sent once per script, not per step).

`zp_stats` and `zp_shas` read every probed path of a script in one process each (a fork and exec costs
a node about a millisecond, and a probe of 10 steps used to fork 20 times): `zp_stats` prints, for each
path that exists, `name US type US mode US owner US group US size US %N` ending in GS (ASCII 0x1f,
0x1d; %N is `name -> target` for a link), `zp_shas` the `sha256sum` lines of the regular files among
its arguments. `zp_stat` and `zp_sha` are the one-path forms, for a path the batch cannot carry (one
with a control character or a backslash in its name).
"""

PRELUDE = r"""
zp_stats() {
  LC_ALL=C QUOTING_STYLE=literal stat --printf '%n\037%F\037%a\037%U\037%G\037%s\037%N\035' -- "$@" 2>/dev/null
  return 0
}
zp_shas() {
  zn=$#
  while [ "$zn" -gt 0 ]; do
    zf=$1; shift; zn=$((zn - 1))
    if [ -f "$zf" ] && [ ! -L "$zf" ]; then set -- "$@" "$zf"; fi
  done
  [ $# -eq 0 ] || sha256sum -- "$@" 2>/dev/null
  return 0
}
zp_stat() {
  if [ -L "$1" ]; then echo "type link"; echo "target $(readlink "$1")"
  elif [ -d "$1" ]; then echo "type directory"
  elif [ -f "$1" ]; then echo "type file"
  elif [ -e "$1" ]; then echo "type other"
  else echo "type absent"; return 0; fi
  stat -c 'mode %a
owner %U
group %G
size %s' -- "$1"
}
zp_sha() {
  [ -f "$1" ] && [ ! -L "$1" ] && printf 'sha256 ' && sha256sum < "$1"
  return 0
}
zp_content() {
  [ -f "$1" ] && [ ! -L "$1" ] && [ "$(stat -c %s -- "$1")" -le "$2" ] && echo "content $(base64 -w0 < "$1")"
  return 0
}
"""
