# What a nixos_rebuild step reads (after nixos_digest.sh): the configuration's digest, the record of the last switch
# zetactl confirmed, the running and the profile's system, the generation, a switch in flight.
# values: CONFIG_DIR RECORD PROFILE SWITCH_UNIT FOREIGN_UNIT
zv digest "$(zn_digest "$CONFIG_DIR")"
if [ -f "$RECORD" ]; then zv recorded "$(cat "$RECORD")"; fi
zv current "$(readlink -f /run/current-system 2>/dev/null)"
zv profile "$(readlink -f "$PROFILE" 2>/dev/null)"
zg=$(readlink "$PROFILE" 2>/dev/null); zg=${zg#system-}
zv generation "${zg%-link}"
if systemctl is-active --quiet "$SWITCH_UNIT" "$FOREIGN_UNIT" 2>/dev/null; then zv inflight yes; fi
