# Mark this node retired (zetactl/nodes.py); the key removal follows in the same script.
set -eu
[ -d /var/lib/zeta/state ] || { mkdir -p /var/lib/zeta && mkdir -m 0700 /var/lib/zeta/state; }
(umask 077; printf 'retired %s\n' "$(date +%s)" > /var/lib/zeta/state/retired)
