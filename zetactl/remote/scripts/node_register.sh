# Register this node (zetactl/nodes.py, homelab mode): its node id (kept when it has one), the registered marker.
# Field node_id.
# values: NODE_ID BY
set -eu
mkdir -p /etc/zeta
[ -d /var/lib/zeta/state ] || { mkdir -p /var/lib/zeta && mkdir -m 0700 /var/lib/zeta/state; }
[ -s /etc/zeta/node-id ] || printf '%s\n' "$NODE_ID" > /etc/zeta/node-id
(umask 077; printf 'registered %s\nnode_id %s\nby %s\n' "$(date +%s)" "$(cat /etc/zeta/node-id)" "$BY" \
  > /var/lib/zeta/state/registered)
zf node_id "$(cat /etc/zeta/node-id)"
