# Start a switch in the detached unit zeta-switch (systemd-run), unless one is in flight; answers the fields
# previous_generation and started, resumed (this run's own switch, still running) or inflight.
# values: S SWITCH_DIR SWITCH_UNIT FOREIGN_UNIT SWITCH_LOCK PROFILE JOB
set -u
if systemctl is-active --quiet "$SWITCH_UNIT" 2>/dev/null && [ -f "$S/job.sh" ]; then
  g=$(cat "$S/previous-link"); g=${g#system-}
  zf previous_generation "${g%-link}"
  zf resumed yes; exit 0   # this run's own switch (a resumed run): wait for it again
fi
if systemctl is-active --quiet "$SWITCH_UNIT" "$FOREIGN_UNIT" 2>/dev/null; then
  for u in "$SWITCH_UNIT" "$FOREIGN_UNIT"; do
    if systemctl is-active --quiet "$u"; then
      zf inflight "unit $u is $(systemctl show -p ActiveState --value "$u")"; exit 0
    fi
  done
fi
mkdir -p /run/nixos
[ -d /var/lib/zeta/state ] || { mkdir -p /var/lib/zeta && mkdir -m 0700 /var/lib/zeta/state; }
if ! flock -n "$SWITCH_LOCK" true 2>/dev/null; then zf inflight "$SWITCH_LOCK is held"; exit 0; fi
find "$SWITCH_DIR" -mindepth 1 -maxdepth 1 -exec rm -rf {} + 2>/dev/null  # earlier, finished switches
{ mkdir -p "${S%/*}" && { [ -d "$S" ] || mkdir -m 0700 "$S"; }; } || exit 1  # its log and result: private
prevgen=$(readlink "$PROFILE") || { echo "no system profile at $PROFILE" >&2; exit 1; }
printf '%s\n' "$(readlink -f "$PROFILE")" > "$S/previous"
printf '%s\n' "$prevgen" > "$S/previous-link"
printf '%s\n' "$JOB" > "$S/job.sh"
systemctl reset-failed "$SWITCH_UNIT" 2>/dev/null
set --
for v in NIX_PATH LOCALE_ARCHIVE; do eval "[ -n \"\${$v:-}\" ]" && set -- "$@" -E "$v"; done
systemd-run --unit="$SWITCH_UNIT" --collect --no-ask-password --quiet --service-type=exec "$@" \
  /bin/sh "$S/job.sh" || exit 1
g=${prevgen#system-}
zf previous_generation "${g%-link}"
zf started yes
