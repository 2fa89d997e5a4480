# A hub host's room for tenants (zetactl/hubs/tenants.py): fields (under $zk) disk (KiB free where the registries
# are), mem (KiB available), tenants (the tenant identities its registries hold, one per line).
# values: HUBS
zc_d=$HUBS; [ -d "$zc_d" ] || zc_d=/var/lib; [ -d "$zc_d" ] || zc_d=/
zv disk "$(df -Pk "$zc_d" | awk 'NR == 2 { print $4 }')"
zv mem "$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)"
zv tenants "$(cat "$HUBS"/*/registry 2>/dev/null | awk '!/^#/ && NF == 5 { print $2 }' | sort -u)"
