# The run's lock session (after the prelude): hold the host lock while this channel's stdin is open, and run the
# run's scripts under it, one at a time, each answered by zanswer (stdout, stderr, exit status).
#
# flock is on fd 9 of this shell: the kernel releases it when the shell ends, so a controller that dies (even by
# SIGKILL) never leaves a stale lock; a script's processes never inherit it (9>&-). Each script comes as a line
# with its size in bytes, then the script; it runs only if it arrived whole. A size of 0 ends the scripts; then
# come the marker's lines, ending in a line `end`; a cut connection leaves the old marker in place.
#
# What the session writes is private (umask 077: the state directory 0700, its files 0600); each script runs with
# the login's own umask. A state directory made by an older zetactl is made private once (.private-v1).
# values: STATE WAIT BUSY OWNER
zu=$(umask)
[ -d "$STATE" ] || { mkdir -p "${STATE%/*}" && mkdir -m 0700 "$STATE"; }  # its parents: 0755, the login's
umask 077
if [ ! -e "$STATE/.private-v1" ]; then
  chmod 0700 "$STATE"
  for zf_old in "$STATE"/* "$STATE"/.last-run.tmp; do [ ! -f "$zf_old" ] || chmod 0600 "$zf_old"; done
  : > "$STATE/.private-v1"
fi
exec 9>>"$STATE/lock"
flock -w "$WAIT" -E "$BUSY" 9 || {
  zr=$?
  if [ "$zr" -eq "$BUSY" ]; then cat "$STATE/lock.owner" >&2; fi
  exit "$zr"
}
printf '%s\n' "$OWNER" > "$STATE/lock.owner"
ze=$STATE/lock.stderr  # what the scripts say on stderr: made here (0600), then truncated by each script
: > "$ze"
if [ -e "$STATE/lock.err" ]; then rm -f "$STATE/lock.err"; fi  # its 0644 predecessor
echo locked
while IFS= read -r zl && [ "$zl" != 0 ]; do
  zs=$(head -c "$zl")
  case "$zs" in *"# zetactl: end of script") ;; *) echo "zetactl: the script arrived cut short; none of it ran" >&2; exit 96;; esac
  zo=$(umask "$zu"; eval "$zs" </dev/null 2>"$ze" 9>&-)
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
