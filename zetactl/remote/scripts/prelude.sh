# The node-side prelude: the functions every script zetactl runs on a node may use. Sent once per session
# (or once per script on a channel of its own), never with a value in it.
#
# The answer format (zetactl/remote/frame.py reads it): every record a script answers is
#     RS TAG SP BYTES LF VALUE ETX
# where RS is the byte 0x1e, ETX 0x03 and BYTES the length of VALUE in bytes. A reader takes exactly BYTES bytes, so
# nothing a node holds (a file name, a link target, a file, a command's output) can end a record early or forge
# another one. An answer never ends in a newline, so capturing it with $(...) loses nothing.

# zb VALUE: zn = the length of VALUE in bytes (bash counts characters under a UTF-8 locale: count under C)
zb() {
  zb_set=${LC_ALL+x}; zb_old=${LC_ALL-}; LC_ALL=C; zn=${#1}
  if [ -n "$zb_set" ]; then { LC_ALL=$zb_old; } 2>/dev/null; else unset LC_ALL; fi  # (a locale not installed: quiet)
}

# zf TAG VALUE: one record
zf() {
  zb "$2"
  printf '\036%s %d\n%s\003' "$1" "$zn" "$2"
}

# zv NAME VALUE: a field of the step being read (its tag is in $zk, set by the engine before each step's part)
zk=''
zv() {
  zf "$zk.$1" "$2"
}

# zanswer STATUS STDOUT STDERR: a script's whole answer, one write: RS OUT SP STATUS SP BYTES SP BYTES LF STDOUT STDERR
zanswer() {
  zb "$2"; za_out=$zn; zb "$3"
  printf '\036OUT %d %d %d\n%s%s' "$1" "$za_out" "$zn" "$2" "$3"
}

# zp_stats TAG PATH...: one record, for every PATH that exists: type US mode US owner US group US size US name GS, the
# name (with ` -> target` for a link) C-quoted by stat itself (QUOTING_STYLE=c): a control byte in it is an escape
zp_stats() {
  zp_tag=$1; shift
  zf "$zp_tag" "$(LC_ALL=C QUOTING_STYLE=c stat --printf '%F\037%a\037%U\037%G\037%s\037%N\035' -- "$@" 2>/dev/null)"
}

# zp_shas TAG PATH...: one record, the `sha256sum` lines of the regular files among the PATHs (a FIFO is never read)
zp_shas() {
  zp_tag=$1; shift; zp_n=$#
  while [ "$zp_n" -gt 0 ]; do
    zp_f=$1; shift; zp_n=$((zp_n - 1))
    if [ -f "$zp_f" ] && [ ! -L "$zp_f" ]; then set -- "$@" "$zp_f"; fi
  done
  if [ $# -gt 0 ]; then zf "$zp_tag" "$(sha256sum -- "$@" 2>/dev/null)"; else zf "$zp_tag" ''; fi
}

# zp_content PATH LIMIT: field `content`, at most LIMIT + 1 of the file's bytes in base64 (more than LIMIT: too
# large), when it is a regular file. Read without following a link or waiting on a FIFO swapped in meanwhile.
zp_content() {
  if [ -f "$1" ] && [ ! -L "$1" ]; then
    zv content "$(dd if="$1" iflag=nofollow,nonblock bs=$(($2 + 1)) count=1 status=none | base64 -w0)"
  fi
  return 0
}
