# The run's lock session (after the prelude): hold the host lock while this channel's stdin is open, and run the
# run's scripts under it, one at a time, each answered by zanswer (stdout, stderr, exit status).
#
# flock is on fd 9 of this shell: the kernel releases it when the shell ends, so a controller that dies (even by
# SIGKILL) never leaves a stale lock; a script's processes never inherit it (9>&-). Each script comes as a line
# with its size in bytes, then the script; it runs only if it arrived whole. A size of 0 ends the scripts; then
# come the marker's lines, ending in a line `end`; a cut connection leaves the old marker in place.
# values: STATE WAIT BUSY OWNER
[ -d "$STATE" ] || mkdir -p "$STATE"
exec 9>>"$STATE/lock"
flock -w "$WAIT" -E "$BUSY" 9 || {
  zr=$?
  if [ "$zr" -eq "$BUSY" ]; then cat "$STATE/lock.owner" >&2; fi
  exit "$zr"
}
printf '%s\n' "$OWNER" > "$STATE/lock.owner"
ze=$STATE/lock.stderr  # private (0600): it holds what scripts said on stderr; made once, then truncated by each
if [ ! -e "$ze" ]; then (umask 077; : > "$ze"); fi
if [ -e "$STATE/lock.err" ]; then rm -f "$STATE/lock.err"; fi  # its 0644 predecessor
echo locked
while IFS= read -r zl && [ "$zl" != 0 ]; do
  zs=$(head -c "$zl")
  case "$zs" in *"# zetactl: end of script") ;; *) echo "zetactl: the script arrived cut short; none of it ran" >&2; exit 96;; esac
  zo=$(eval "$zs" </dev/null 2>"$ze" 9>&-)
  zr=$?
  zerr=''
  if [ -s "$ze" ]; then zerr=$(cat "$ze"); fi
  zanswer "$zr" "$zo" "$zerr"
done
zm=$STATE/.last-run.tmp
: > "$zm"
while IFS= read -r zx; do
  printf '%s\n' "$zx" >> "$zm"
  if [ "$zx" = end ]; then mv -f "$zm" "$STATE/last-run"; break; fi
done
if [ -e "$zm" ]; then rm -f "$zm"; fi
