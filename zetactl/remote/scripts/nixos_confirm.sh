# Over a fresh connection: proves the node reachable, and writes the verdict (once: ln -s is atomic). Answers the
# fields state (pending) or verdict, result, log_tail (base64), failed_units.
# values: S RECORD RUN_ID RB4
umask 077  # the record it writes is private
[ -f "$S/result" ] || { zf state pending; exit 0; }
rc=$(sed -n 's/^rc //p' "$S/result"); new=$(sed -n 's/^new //p' "$S/result")
cur=$(sed -n 's/^current //p' "$S/result"); prev=$(cat "$S/previous")
want=confirmed
case "$rc" in
  0|100) ;;
  4) [ "$RB4" -eq 1 ] && want=rollback ;;
  *) if [ "$new" != "$prev" ] || [ "$cur" != "$prev" ]; then want=rollback; fi ;;
esac
ln -s "$want" "$S/verdict" 2>/dev/null
verdict=$(readlink "$S/verdict")
zf verdict "$verdict"
zf result "$(cat "$S/result")"
zf log_tail "$(tail -n 12 "$S/log" 2>/dev/null | base64 -w0)"
zf failed_units "$(sed -n 's/^warning: the following units failed: //p' "$S/log" | tail -n 1)"
if [ "$verdict" = confirmed ] && { [ "$rc" = 0 ] || [ "$rc" = 4 ]; }; then
  d=$(sed -n 's/^digest //p' "$S/result")
  printf 'digest %s\nsystem %s\nprofile %s\nrun %s\n' "$d" "$(readlink -f /run/current-system)" "$new" "$RUN_ID" \
    > "$RECORD.tmp"
  mv -f "$RECORD.tmp" "$RECORD"
fi
