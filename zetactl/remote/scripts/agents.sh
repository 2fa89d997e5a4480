# za_show: `systemctl show -p Id -p ActiveState -p SubState` of every agent unit on this node: the zeta-*.service
# units but hub services, tenant apps and zetactl's own switch unit (zetactl/agents.py).
za_show() {
  set --
  for za_f in /etc/systemd/system/zeta-*.service; do
    [ -e "$za_f" ] || [ -L "$za_f" ] || continue
    za_u=${za_f##*/}
    case "$za_u" in zeta-hub-*|zeta-tenant-*|zeta-switch*) continue ;; esac
    case "$za_u" in *[!A-Za-z0-9:_.@\\-]*) continue ;; esac  # not a unit name systemd would load
    set -- "$@" "$za_u"
  done
  [ $# -eq 0 ] || systemctl show -p Id -p ActiveState -p SubState -- "$@"
}
