# Mark this node retired (zetactl/nodes.py); the key removal follows in the same script.
set -eu
mkdir -p /var/lib/zeta/state
printf 'retired %s\n' "$(date +%s)" > /var/lib/zeta/state/retired
