# zetactl switch job (unit zeta-switch, after nixos_digest.sh): switch, publish the result, wait for the verdict,
# roll back without one. CONFIRM 0 (boot): nothing to guard, the running system is unchanged. The verdict is a
# symlink `verdict -> confirmed|rollback|timeout`: `ln -s` is atomic and carries its value, so the node's timer and
# the controller can never both decide, and nobody reads half of it.
# values: JOB_PATH S ACTION CONFIRM SWITCH_TIMEOUT CONFIG_DIR REACTIVATE ROLLBACK_RECORD
export PATH="$JOB_PATH"
P=/nix/var/nix/profiles/system
prev=$(cat "$S/previous"); prevgen=$(cat "$S/previous-link")
cd /
digest=$(zn_digest "$CONFIG_DIR")
timeout "$SWITCH_TIMEOUT" nixos-rebuild "$ACTION" > "$S/log" 2>&1
rc=$?
g=$(readlink "$P"); g=${g#system-}; g=${g%-link}
printf 'rc %s\nnew %s\ncurrent %s\ngeneration %s\ndigest %s\nfinished %s\n' "$rc" "$(readlink -f "$P")" \
  "$(readlink -f /run/current-system)" "$g" "$digest" "$(date +%s)" > "$S/result.tmp"
mv -f "$S/result.tmp" "$S/result"
if [ "$CONFIRM" -eq 0 ]; then ln -s confirmed "$S/verdict" 2>/dev/null; exit 0; fi
i=0
while [ "$i" -lt "$CONFIRM" ] && [ ! -L "$S/verdict" ]; do sleep 1; i=$((i + 1)); done
ln -s timeout "$S/verdict" 2>/dev/null
verdict=$(readlink "$S/verdict")
[ "$verdict" = confirmed ] && exit 0
pg=${prevgen#system-}; pg=${pg%-link}
{
  echo "zetactl: verdict '$verdict': rolling back to $prevgen ($prev)"
  [ "$(readlink "$P")" = "$prevgen" ] || nix-env -p "$P" --switch-generation "$pg"
  "$prev/bin/switch-to-configuration" "$REACTIVATE"
} > "$S/rollback.log" 2>&1
rrc=$?
printf 'verdict %s\ngeneration %s\nsystem %s\nfrom %s\nrollback_rc %s\nat %s\n' "$verdict" "$pg" \
  "$(readlink -f /run/current-system)" "$(sed -n 's/^new //p' "$S/result")" "$rrc" "$(date +%s)" \
  > "$S/rolled-back.tmp"
(umask 077; cp "$S/rolled-back.tmp" "$ROLLBACK_RECORD.tmp") && mv -f "$ROLLBACK_RECORD.tmp" "$ROLLBACK_RECORD"
mv -f "$S/rolled-back.tmp" "$S/rolled-back"
