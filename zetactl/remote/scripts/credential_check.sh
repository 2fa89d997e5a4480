# zc_check: check an opened credential envelope ($W/plain) on the node, before anything is installed (POSIX sh and
# coreutils; the value only ever travels as file content). Needs N (the credential), S (the state directory), me
# (this node's id), AREAS (the folders credentials go in), SYSTEM (folders none goes in; one per line) and refuse(). The digest (the header's
# last line) is sha256 of the plaintext without that line, recomputed over the exact bytes: any byte changed,
# inserted or removed, in the header or the value, is refused before a field is read. Leaves $W/head, $W/value,
# $W/bound (the bytes the digest covers but the value) and d, na, gen, cur, path, mode, owner, group (checked).
zc_check() {
  sed -n '1,/^$/p' "$W/plain" > "$W/head"
  magic=$(head -n 1 "$W/head")
  [ "$magic" != "zeta-credential v1" ] || refuse "envelope format v1, sealed by an older zetactl (its header is \
not bound to its digest): reseal it with zetactl creds rotate $N --from-file FILE"
  [ "$magic" = "zeta-credential v2" ] || refuse "not a zeta credential envelope (v2)"
  hn=$(wc -l < "$W/head"); hl=$(wc -c < "$W/head")
  if [ "$hn" -lt 3 ] || [ -n "$(tail -n 1 "$W/head")" ]; then refuse "the envelope has no header end"; fi
  tail -c +"$((hl + 1))" "$W/plain" > "$W/value"
  d=$(sed -n "$((hn - 1))s/^digest //p" "$W/head")
  sed "$((hn - 1))d" "$W/head" > "$W/bound"
  if [ -z "$d" ] || [ "$(cat "$W/bound" "$W/value" | sha256sum | cut -d' ' -f1)" != "$d" ]
  then
    refuse "the header or the value does not match the envelope's digest (edited or damaged after sealing)"
  fi
  [ "$(h node)" = "$me" ] || refuse "sealed for node '$(h node)', this node is '$me'"
  [ "$(h name)" = "$N" ] || refuse "the envelope holds credential '$(h name)', not '$N'"
  na=$(h not-after)
  case "$na" in ''|*[!0-9]*) refuse "not-after '$na' is not a number" ;; esac
  [ "$na" = 0 ] || [ "$(date +%s)" -lt "$na" ] || refuse "expired at $(date -u -d "@$na" '+%Y-%m-%d %H:%M:%S') UTC"
  gen=$(h generation)
  case "$gen" in ''|*[!0-9]*) refuse "generation '$gen' is not a number" ;; esac
  cur=$(sed -n 's/^generation //p' "$S/$N.meta" 2>/dev/null || true); cur=${cur:-0}
  [ "$gen" -ge "$cur" ] || refuse "generation $gen is older than the installed generation $cur (a replay?)"
  [ "$(wc -c < "$W/value")" -eq "$(h length)" ] || refuse "the value is not $(h length) bytes long (truncated?)"
  path=$(h path); mode=$(h mode); owner=$(h owner); group=$(h group)
  case "$path" in
    */./*|*/.|*/../*|*/..|*//*|*/) refuse "path $path is not written plainly" ;;
    /?*) ;;
    *) refuse "path $path is not absolute" ;;
  esac
  zc_left=$AREAS; zc_in=''
  while [ -n "$zc_left" ]; do
    zc_area=${zc_left%%
*}; [ "$zc_area" != "$zc_left" ] && zc_left=${zc_left#*
} || zc_left=''
    case "$path" in "$zc_area"/?*) zc_in=$zc_area ;; esac
  done
  [ -n "$zc_in" ] || refuse "path $path is outside this node's credential areas ($(printf '%s' "$AREAS" | tr '\n' ' '))"
  zc_left=$SYSTEM
  while [ -n "$zc_left" ]; do
    zc_sys=${zc_left%%
*}; [ "$zc_sys" != "$zc_left" ] && zc_left=${zc_left#*
} || zc_left=''
    case "$path" in "$zc_sys"|"$zc_sys"/*) refuse "path $path is in $zc_sys, a system or zetactl folder" ;; esac
  done
  case "$mode" in [0-7][0-7][0-7]|0[0-7][0-7][0-7]) ;; *) refuse "mode $mode is not octal" ;; esac
  [ $((0$mode & 0037)) -eq 0 ] || refuse "mode $mode lets others (or the group) write or read it"
}

# h FIELD: the header's FIELD (the first line `FIELD value`)
h() {
  sed -n "s/^$1 //p" "$W/head" | head -n 1
}

# zc_enter PATH: cd into PATH's folder one name at a time, making what is missing (root, 0755), and refuse a link or
# a folder owned by anyone but root or $owner, or one others may write to; the folder is entered before it is judged and `pwd -P` must be where
# the walk is, so nothing swapped in meanwhile is followed. Leaves zc_name, the last name; the caller acts on
# ./NAME in that folder, then leaves it (cd /).
zc_enter() {
  cd / || refuse "cannot enter /"
  zc_rest=${1#/}; zc_here=''
  while :; do
    case "$zc_rest" in */*) ;; *) break ;; esac
    zc_part=${zc_rest%%/*}; zc_rest=${zc_rest#*/}
    if [ ! -e "$zc_part" ] && [ ! -L "$zc_part" ]; then mkdir -m 0755 -- "$zc_part" || refuse "cannot make $zc_here/$zc_part"; fi
    [ ! -L "$zc_part" ] || refuse "$zc_here/$zc_part is a symbolic link"
    cd -P -- "./$zc_part" 2>/dev/null || refuse "$zc_here/$zc_part is not a folder"  # ./: never CDPATH or -
    zc_here=$zc_here/$zc_part
    [ "$(pwd -P)" = "$zc_here" ] || refuse "$zc_here changed while it was entered"
    zc_who=$(stat -c '%a %u %U' .)
    case " ${zc_who#* } " in *" 0 "*|*" $owner "*) ;; *) refuse "$zc_here belongs to ${zc_who##* }, not root or $owner" ;; esac
    case "${zc_who%% *}" in
      *[2367][0-7]|*[2367]) refuse "$zc_here can be written by others than its owner (mode ${zc_who%% *})" ;;
    esac
  done
  zc_name=$zc_rest
}
