"""The sh functions every probe script starts with (sent once per script, not per step)."""

PRELUDE = r"""
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
