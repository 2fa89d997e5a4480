# Facts: what a node is (zetactl/facts.py), as fields (zv NAME VALUE).
zf_c=$(readlink -f /run/current-system 2>/dev/null); zv current_system "$zf_c"
zv booted_system "$(readlink -f /run/booted-system 2>/dev/null)"
zf_p=$(readlink -f /nix/var/nix/profiles/system 2>/dev/null); zv profile_system "$zf_p"
zf_g=$(readlink /nix/var/nix/profiles/system 2>/dev/null); zf_g=${zf_g#system-}; zv generation "${zf_g%-link}"
zv nixos_version "$(nixos-version 2>/dev/null)"
zf_b=$(readlink -f /run/booted-system 2>/dev/null)
zf_r=no
for zf_f in kernel initrd kernel-modules; do
  [ "$(readlink -f "$zf_b/$zf_f" 2>/dev/null)" = "$(readlink -f "$zf_p/$zf_f" 2>/dev/null)" ] || zf_r=yes
done
zv reboot_needed "$zf_r"
zv failed_units "$(systemctl list-units --failed --plain --no-legend --no-pager 2>/dev/null | \
  while read -r zf_u _; do printf '%s ' "$zf_u"; done)"
zv hostname "$(hostname 2>/dev/null || cat /etc/hostname)"
zv boot_id "$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)"
