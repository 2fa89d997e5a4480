# Wait on the node for the switch job's result (field result); checks every second that the job is still there
# (field unit when it is gone without one).
# values: S UNIT
n=0
while [ ! -f "$S/result" ]; do
  n=$((n + 1))
  if [ $((n % 10)) -eq 0 ] && ! systemctl is-active --quiet "$UNIT"; then
    sleep 0.2
    if [ ! -f "$S/result" ]; then zf unit "$(systemctl is-active "$UNIT")"; exit 0; fi
  fi
  sleep 0.1
done
zf result "$(cat "$S/result")"
