# The last lines the switch unit logged (field journal).
# values: UNIT
zf journal "$(journalctl -u "$UNIT" -n 12 -o cat --no-pager 2>&1)"
