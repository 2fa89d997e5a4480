# The lab node's first process (run by `sh -c` inside `unshare --mount --uts`; zetactl/lab/fleet.py), which becomes
# its sshd. Arguments: the node's directory, its name, the lab's bin directory, the Python that runs zetactl.
# values: SIZE TREES
set -eu
cd /  # the controller's working directory may be under /tmp, which the node covers with its own tmpfs
node_dir="$1"; name="$2"; bin_dir="$3"; python="$4"
hostname "$name"
# Bind what the node needs from the machine before /run and /tmp are covered by fresh tmpfs.
mount --bind "$bin_dir" /usr/local/sbin
mount -o remount,bind,ro /usr/local/sbin
mount -t tmpfs -o size="$SIZE",mode=0755 tmpfs /run
# The node's own /dev/shm (POSIX shared memory and semaphores), as on a machine of its own.
mount -t tmpfs -o size="$SIZE",mode=1777 zeta-lab-shm /dev/shm
mkdir -p /run/zeta-lab/node
mount --bind "$node_dir" /run/zeta-lab/node
N=/run/zeta-lab/node
# A skewed clock (`zetactl lab skew`: libfaketime in the node's /etc/ld.so.preload; it lasts across reboots like a
# wrong RTC) keeps /dev/shm read-only, so that libfaketime keeps no shared state (SKEW_SHM in fleet.py). Done
# before /etc is the node's: from then on every process loads libfaketime, mount too.
if grep -qs /faketime/libfaketime "$N/upper/etc/ld.so.preload"; then mount -o remount,bind,ro /dev/shm; fi
for tree in $TREES; do  # names without spaces (layout.OVERLAID)
  [ -d "/$tree" ] || continue
  mount -t overlay overlay -o "lowerdir=/$tree,upperdir=$N/upper/$tree,workdir=$N/work/$tree" "/$tree"
done
: > /run/zeta-lab/empty
[ -e /root/.bashrc ] && mount --bind /run/zeta-lab/empty /root/.bashrc
[ -e /root/.profile ] && mount --bind /run/zeta-lab/empty /root/.profile
cat /proc/sys/kernel/random/uuid > /run/zeta-lab/boot_id
mount --bind /run/zeta-lab/boot_id /proc/sys/kernel/random/boot_id
mkdir -p /run/sshd /run/zeta-lab/units /run/nixos /run/systemd/system /run/systemd/transient
chmod 0755 /run/sshd
system=$(readlink -f /nix/var/nix/profiles/system)
ln -sfn "$system" /run/current-system
ln -sfn "$system" /run/booted-system
# Boot activates the booted generation: its units in /etc/systemd/system (when a `boot` switch or a rollback
# left them pointing at another generation).
case "$(readlink /etc/systemd/system/sshd.service)" in
  "$system"/*) ;;
  *) /usr/bin/python3 -c 'import sys; from pathlib import Path; sys.path.insert(0, "/usr/local/sbin")
import _nixlab as n
n.install_units(sys.argv[1], Path("/etc/systemd/system"), Path("/nix/store"))' "$system" ;;
esac
for link in /etc/systemd/system/*.wants/*; do
  [ -e "$link" ] || [ -L "$link" ] || continue
  echo active > "/run/zeta-lab/units/${link##*/}"
done
# Units whose ExecStart cannot run come up failed, as after a real boot.
grep -l '^ExecStart=[-@:+!]*/bin/false' /etc/systemd/system/*.wants/* 2>/dev/null | while IFS= read -r f; do
  echo failed > "/run/zeta-lab/units/${f##*/}"
done
# zeta-restore.service: credentials on the node's boot "USB" (DIR/nodes/NAME/usb: *.age blobs from
# `zetactl creds seal-blob`, its usb-id, and a 0600 passphrase file standing in for the console prompt)
# are opened into /run/zeta/creds at boot. The restore tool is zetactl's `creds open-blob`.
if [ -d "$N/usb" ]; then
  mkdir -p /run/zeta/creds; chmod 0755 /run/zeta /run/zeta/creds; state=active
  for blob in "$N"/usb/*.age; do
    [ -f "$blob" ] || continue
    cred=${blob##*/}; cred=${cred%.age}
    "$python" -m zetactl creds open-blob "$blob" --usb-id "$(cat "$N/usb/usb-id")" --name "$cred" \
      --out "/run/zeta/creds/$cred" --passphrase-file "$N/usb/passphrase" >> /run/zeta-lab/restore.log 2>&1 \
      || state=failed
  done
  echo "$state" > /run/zeta-lab/units/zeta-restore.service
fi
# The node's own /tmp last: the restore above runs zetactl from the controller's checkout, which may be under
# the machine's /tmp (a CI clone).
mount -t tmpfs -o size="$SIZE",mode=1777 tmpfs /tmp
# The booted generation decides whether sshd answers on port 22 (`# zeta-lab: break-network`: port 2).
port=22
grep -qx break-network "$system/zeta-lab-flags" 2>/dev/null && port=2
grep -q "^ListenAddress .*:$port\$" /etc/ssh/sshd_config ||
  sed -i "s/^\(ListenAddress .*\):[0-9]*\$/\1:$port/" /etc/ssh/sshd_config
# This shell becomes the listening sshd (same pid through SIGHUP re-execs): switch-to-configuration signals it.
echo $$ > /run/zeta-lab/sshd.pid
exec /usr/sbin/sshd -D -e -f /etc/ssh/sshd_config
