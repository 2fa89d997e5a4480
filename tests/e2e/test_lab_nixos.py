"""The lab's NixOS layer over real SSH: module files -> generations, switch-to-configuration, nix-env, systemd-run,
fault markers and reboots (docs/lab.md, shared/reference/nixos-commands.md)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Cli, _lab, needs_lab
from zetactl.lab import Lab
from zetactl.lab.layout import ZETA_DEFAULT_NIX

pytestmark = [needs_lab]

PROFILE = "/nix/var/nix/profiles/system"
STORE_PATH = r"/nix/store/[0-9a-df-np-sv-z]{32}-nixos-system-lab-\d{3}-25\.05\.20250102\.6df2492"


@pytest.fixture(scope="module")
def nixlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("nixlab"), 3, subnet=50)


def ssh_argv(lab: Lab, node: str) -> list[str]:
    return ["ssh", "-i", str(lab.operator_key), "-o", f"UserKnownHostsFile={lab.known_hosts}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-o", "ConnectTimeout=5",
            "-o", "LogLevel=ERROR", f"root@{lab.node(node).address}"]


def ssh(lab: Lab, node: str, command: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*ssh_argv(lab, node), command], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def ok(lab: Lab, node: str, command: str) -> str:
    result = ssh(lab, node, command)
    assert result.returncode == 0, result
    return result.stdout


def port_open(address: str, port: int) -> bool:
    try:
        with socket.create_connection((address, port), timeout=1):
            return True
    except OSError:
        return False


def generations(lab: Lab, node: str) -> list[tuple[int, bool]]:
    out = ok(lab, node, f"nix-env --list-generations -p {PROFILE}")
    return [(int(line.split()[0]), "(current)" in line) for line in out.splitlines()]


def test_generation_one_is_exactly_the_build_of_the_seeded_modules(nixlab: Lab) -> None:
    node = "lab-001"
    files = ok(nixlab, node, "cd /etc/nixos && ls -F . zeta").split()
    assert files == [".:", "configuration.nix", "hardware-configuration.nix", "zeta/",
                     "zeta:", "default.nix", "k3s.nix", "zeta-agents.nix"]
    configuration = ok(nixlab, node, "cat /etc/nixos/configuration.nix")
    assert 'system.stateVersion = "25.05";' in configuration
    assert "  imports = [ ./hardware-configuration.nix ./zeta ];\n" in configuration
    assert 'fileSystems."/" =' in ok(nixlab, node, "cat /etc/nixos/hardware-configuration.nix")
    assert ok(nixlab, node, "cat /etc/nixos/zeta/default.nix") == ZETA_DEFAULT_NIX
    k3s = ok(nixlab, node, "cat /etc/nixos/zeta/k3s.nix")
    assert "services.k3s = {\n    enable = true;\n    role = \"server\";" in k3s and "systemd.services" not in k3s
    before = ok(nixlab, node, "readlink /run/current-system")
    result = ssh(nixlab, node, "nixos-rebuild switch")
    assert result.returncode == 0, result
    assert result.stderr.splitlines() == ["building the system configuration...", "updating GRUB 2 menu...",
                                          "activating the configuration...", "setting up /etc...",
                                          "reloading user units for root...", "setting up tmpfiles"]
    assert generations(nixlab, node) == [(1, True)]
    assert ok(nixlab, node, "readlink /run/current-system") == before
    assert re.fullmatch(STORE_PATH + "\n", before)
    top = before.strip()
    links = ok(nixlab, node, "cd /etc/systemd/system && for u in k3s zeta-otto zeta-lior zeta-vera sshd nix-daemon; "
               "do readlink $u.service multi-user.target.wants/$u.service; systemctl is-active $u; done").split()
    assert links == [x for u in ("k3s", "zeta-otto", "zeta-lior", "zeta-vera", "sshd", "nix-daemon")
                     for x in (f"{top}/etc/systemd/system/{u}.service",) * 2 + ("active",)]
    assert "Description=Lightweight Kubernetes\n" in ok(nixlab, node, f"cat {top}/etc/systemd/system/k3s.service")
    unit = ok(nixlab, node, f"cat {top}/etc/systemd/system/zeta-otto.service")
    assert "Description=Zeta agent otto\n" in unit and "ExecStart=/bin/sleep infinity\n" in unit
    assert 'Environment="ZETA_AGENT=otto"' in unit and "WantedBy=multi-user.target" in unit
    assert ok(nixlab, node, f"ls {top}; readlink {top}/bin/switch-to-configuration; cat {top}/nixos-version").split() \
        == ["bin", "configuration-name", "etc", "init-interface-version", "initrd", "kernel", "kernel-modules",
            "nixos-version", "systemd", "zeta-lab-flags", "/usr/local/sbin/switch-to-configuration",
            "25.05.20250102.6df2492"]
    systemd = ok(nixlab, node, f"readlink {top}/systemd; ls -l /run/current-system/systemd/bin").splitlines()
    assert re.fullmatch(r"/nix/store/[0-9a-df-np-sv-z]{32}-systemd-257\.5", systemd[0])
    assert [line.split()[-1] for line in systemd[2:]] == ["/usr/local/sbin/journalctl", "/usr/local/sbin/systemctl",
                                                          "/usr/local/sbin/systemd-run"]
    # the hub modules only on admin nodes, k3s on workers: role 'admin' needs 5 nodes, checked by the seed
    assert ok(nixlab, node, "nixos-rebuild list-generations --json; nixos-version --json").count('"current": true') == 1


def test_switch_starts_restarts_stops_and_reports_failed_units(nixlab: Lab) -> None:
    node = "lab-001"
    ok(nixlab, node, r"""printf '[Unit]\nDescription=Hand\n[Service]\nExecStart=/bin/sleep infinity\n' \
        > /etc/systemd/system/hand.service
cat > /etc/nixos/zeta/web.nix <<'EOF'
{ config, pkgs, lib, ... }:
{
  # A comment with a brace } and a "quote
  systemd.services.web = {
    description = "Web server";
    wantedBy = [ "multi-user.target" ];
    after = [ "network.target" ];
    environment = { PORT = "8080"; MODE = "prod"; };
    serviceConfig = { ExecStart = "${pkgs.nginx}/bin/nginx -g 'daemon off;'"; Restart = "always"; RestartSec = 3; };
  };
  systemd.services."bad" = {
    description = "Broken on purpose";
    wantedBy = [ "multi-user.target" ];
    serviceConfig.ExecStart = "/bin/false";
  };
  systemd.services.k3s.enable = false;
  systemd.services.off = { enable = false; wantedBy = [ "multi-user.target" ]; };
  systemd.services.ignored = lib.mkIf config.services.foo.enable (import ./nope.nix { inherit pkgs; });
}
EOF
sed -i 's/RestartSec = 2;/RestartSec = 5;/' /etc/nixos/zeta/zeta-agents.nix""")
    before = ok(nixlab, node, "readlink /run/current-system")
    dry = ssh(nixlab, node, "nixos-rebuild dry-activate")
    assert dry.returncode == 0, dry
    assert dry.stderr.splitlines()[1:] == [
        "would stop the following units: k3s.service", "would activate the configuration...",
        "would restart the following units: zeta-lior.service, zeta-otto.service, zeta-vera.service",
        "would start the following units: bad.service, web.service"]
    assert ok(nixlab, node, "readlink /run/current-system") == before
    result = ssh(nixlab, node, "nixos-rebuild switch")
    assert result.returncode == 4, result
    lines = result.stderr.splitlines()
    order = ["building the system configuration...", "updating GRUB 2 menu...",
             "stopping the following units: k3s.service", "activating the configuration...", "setting up /etc...",
             "restarting the following units: zeta-lior.service, zeta-otto.service, zeta-vera.service",
             "the following new units were started: web.service",
             "warning: the following units failed: bad.service"]
    assert [line for line in lines if line in order] == order
    assert "× bad.service - Broken on purpose" in lines
    assert generations(nixlab, node) == [(1, False), (2, True)]
    failed = ok(nixlab, node, "systemctl list-units --failed --plain --no-legend")
    assert re.fullmatch(r"bad\.service +loaded failed failed +Broken on purpose\n", failed)
    top = ok(nixlab, node, "readlink /run/current-system").strip()
    assert top != before.strip() and re.fullmatch(STORE_PATH, top)
    web = ok(nixlab, node, "cat /etc/systemd/system/web.service")
    assert "ExecStart=/bin/sleep infinity\n" in web and 'Environment="PORT=8080"' in web
    assert "After=network.target" in web
    out = ok(nixlab, node, "systemctl is-active web k3s; ls /etc/systemd/system; "
             "ls /etc/systemd/system/multi-user.target.wants; "
             "journalctl -u nixos-rebuild-switch-to-configuration -o cat | grep 'failed (status'")
    assert out.startswith("active\ninactive\n")
    assert "k3s.service" not in out and "off.service" not in out and "ignored.service" not in out
    assert "hand.service" in out  # hand-written unit files are left alone
    assert f"switching to system configuration {top} failed (status 4)" in out
    # the same files again: no new generation; roll back to generation 1
    assert ssh(nixlab, node, "nixos-rebuild switch").returncode == 4
    assert generations(nixlab, node) == [(1, False), (2, True)]
    back = ssh(nixlab, node, "nixos-rebuild switch --rollback")
    assert back.returncode == 0, back
    assert back.stderr.splitlines()[0] == "switching from generation 2 to 1"
    assert "stopping the following units: web.service" in back.stderr
    assert "the following new units were started: k3s.service" in back.stderr
    assert ok(nixlab, node, "readlink /run/current-system") == before
    assert ok(nixlab, node, "systemctl is-active k3s; systemctl list-units --failed --plain --no-legend; "
              "test -e /etc/systemd/system/web.service || echo gone") == "active\ngone\n"
    ok(nixlab, node, "rm /etc/nixos/zeta/web.nix /etc/systemd/system/hand.service; "
       "sed -i 's/RestartSec = 5;/RestartSec = 2;/' /etc/nixos/zeta/zeta-agents.nix")


def test_nix_env_profile_operations_and_boot_then_reboot(nixlab: Lab, cli: Cli) -> None:
    node = "lab-002"
    first = ok(nixlab, node, "readlink /run/current-system").strip()
    out = ok(nixlab, node, "cd /root && nixos-rebuild build 2>&1 && readlink result && "
             f"nix-env -p {PROFILE} --set $(readlink result) && nix-env --list-generations | wc -l")
    assert out.splitlines() == ["building the system configuration...", first, "1"]
    rollback = ssh(nixlab, node, f"nix-env -p {PROFILE} --rollback")
    assert (rollback.returncode, rollback.stderr) == (1, "error: no generation older than the current (1) exists\n")
    ok(nixlab, node, "sed -i 's/time.timeZone = \"UTC\";/time.timeZone = \"Europe\\/Berlin\";/' "
       "/etc/nixos/configuration.nix")
    boot = ssh(nixlab, node, "nixos-rebuild boot")
    assert boot.returncode == 0, boot
    assert boot.stderr.splitlines() == ["building the system configuration...", "updating GRUB 2 menu..."]
    second = ok(nixlab, node, f"readlink -f {PROFILE}").strip()
    assert second != first and ok(nixlab, node, "readlink /run/current-system").strip() == first
    listed = json.loads(ok(nixlab, node, "nixos-rebuild list-generations --json"))
    assert [(g["generation"], g["current"]) for g in listed] == [(2, True), (1, False)]
    assert set(listed[0]) == {"generation", "date", "nixosVersion", "kernelVersion", "configurationRevision",
                              "specialisations", "current"}
    assert listed[0]["kernelVersion"] == "6.6.68"
    boot_id = ok(nixlab, node, "cat /proc/sys/kernel/random/boot_id")
    cli("lab", "reboot", node, "--dir", str(nixlab.dir), check_rc=0)
    out = ok(nixlab, node, "readlink /run/current-system /run/booted-system; cat /proc/sys/kernel/random/boot_id; "
             "readlink /etc/systemd/system/k3s.service")
    assert out.splitlines()[:2] == [second, second] and out.splitlines()[2] != boot_id.strip()
    assert out.splitlines()[3] == f"{second}/etc/systemd/system/k3s.service"
    sw = ssh(nixlab, node, f"nix-env -p {PROFILE} -G 1 && nix-env --delete-generations 1; echo rc=$?; "
             f"nix-env --switch-generation 2 && nix-env -p {PROFILE} --delete-generations 1 && "
             "nix-env --list-generations")
    assert sw.stderr.splitlines() == [
        "switching from generation 2 to 1", f"error: cannot delete current version of profile {PROFILE}'",
        "switching from generation 1 to 2", "removing generation 1"]
    assert re.fullmatch(r"rc=1\n   2   \S+ \S+   \(current\)\n", sw.stdout)


def test_fault_markers_activation_fails_and_new_init(nixlab: Lab, cli: Cli) -> None:
    node = "lab-003"
    ok(nixlab, node, "echo '# zeta-lab: activation-fails' >> /etc/nixos/zeta/k3s.nix")
    fails = ssh(nixlab, node, "nixos-rebuild switch")
    assert fails.returncode == 2, fails
    assert "Failed to run activate script" in fails.stderr and "setting up /etc..." in fails.stderr
    assert ok(nixlab, node, "cat /run/current-system/zeta-lab-flags") == "activation-fails\n"
    current = ok(nixlab, node, "readlink /run/current-system").strip()
    ok(nixlab, node, "sed -i 's/activation-fails/new-init/' /etc/nixos/zeta/k3s.nix")
    new_init = ssh(nixlab, node, "nixos-rebuild switch")
    assert new_init.returncode == 100, new_init
    assert new_init.stderr.splitlines()[-1] == (
        "Warning: the new NixOS configuration has an \u2018init\u2019 that is incompatible with the current "
        "configuration. The new configuration won't take effect until you reboot the system.")
    assert "activating the configuration..." not in new_init.stderr
    profile = ok(nixlab, node, f"readlink -f {PROFILE}").strip()
    assert ok(nixlab, node, "readlink /run/current-system").strip() == current != profile
    assert ok(nixlab, node, f"readlink {current}/kernel {profile}/kernel | uniq | wc -l") == "1\n"
    cli("lab", "reboot", node, "--dir", str(nixlab.dir), check_rc=0)
    assert ok(nixlab, node, "readlink /run/booted-system").strip() == profile
    ok(nixlab, node, "sed -i '/zeta-lab: new-init/d' /etc/nixos/zeta/k3s.nix")
    assert ssh(nixlab, node, "nixos-rebuild switch").returncode == 100  # back to the old init: reboot again
    cli("lab", "reboot", node, "--dir", str(nixlab.dir), check_rc=0)
    assert ssh(nixlab, node, "nixos-rebuild switch").returncode == 0


def test_break_network_cuts_ssh_and_a_detached_rollback_restores_it(nixlab: Lab) -> None:
    node = "lab-003"
    address = nixlab.node(node).address
    gens = generations(nixlab, node)
    bystander = subprocess.Popen([*ssh_argv(nixlab, node), "sleep 60; echo survived"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    time.sleep(1)
    switch = ssh(nixlab, node, "echo '# zeta-lab: break-network' >> /etc/nixos/configuration.nix && "
                 "systemd-run -E PATH --unit=zeta-magic-rollback sh -c 'sleep 4; nixos-rebuild switch --rollback' && "
                 "nixos-rebuild switch; echo rc=$?")
    assert switch.returncode == 255 and "rc=" not in switch.stdout, switch
    assert bystander.wait(timeout=10) == 255 and "survived" not in (bystander.stdout.read() if bystander.stdout
                                                                   else "")
    deadline = time.monotonic() + 3  # sshd re-execs itself on SIGHUP: give it a moment to bind port 2
    while not port_open(address, 2) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert port_open(address, 2) and not port_open(address, 22)
    deadline = time.monotonic() + 20
    while not port_open(address, 22) and time.monotonic() < deadline:
        time.sleep(0.3)
    assert port_open(address, 22)
    listed = generations(nixlab, node)
    assert listed[-1] == (gens[-1][0] + 1, False) and dict(listed)[gens[-1][0]] is True
    out = ok(nixlab, node, "systemctl show -p ActiveState,Result,ExecMainStatus zeta-magic-rollback; "
             "journalctl -u zeta-magic-rollback -o cat; grep ListenAddress /etc/ssh/sshd_config")
    assert out.startswith("ActiveState=inactive\nResult=success\nExecMainStatus=0\n")
    assert f"switching from generation {gens[-1][0] + 1} to {gens[-1][0]}" in out
    assert out.endswith(f"ListenAddress {address}:22\n")
    ok(nixlab, node, "sed -i '/zeta-lab: break-network/d' /etc/nixos/configuration.nix")


def test_a_second_switch_is_refused_while_one_is_in_flight(nixlab: Lab) -> None:
    node = "lab-002"
    ok(nixlab, node, "echo '{ ... }: { } # zeta-lab: slow-activation=4' > /etc/nixos/zeta/slow.nix")
    first = subprocess.Popen([*ssh_argv(nixlab, node), "nixos-rebuild switch"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while "active" not in ok(nixlab, node, "systemctl is-active nixos-rebuild-switch-to-configuration || true") \
            .split() and time.monotonic() < deadline:
        time.sleep(0.2)
    second = ssh(nixlab, node, "nixos-rebuild switch")
    assert second.returncode == 1
    assert second.stderr.splitlines()[-1] == ("Failed to start transient service unit: Unit nixos-rebuild-switch-"
                                              "to-configuration.service was already loaded or has a fragment file.")
    direct = ssh(nixlab, node, "$(readlink -f /nix/var/nix/profiles/system)/bin/switch-to-configuration test")
    assert (direct.returncode, direct.stderr) == (11, "Could not acquire lock\n")
    assert first.wait(timeout=30) == 0, first.stderr.read() if first.stderr else ""
    ok(nixlab, node, "rm /etc/nixos/zeta/slow.nix")
    assert ssh(nixlab, node, "nixos-rebuild switch").returncode == 0


def test_systemd_run_transient_units(nixlab: Lab) -> None:
    node = "lab-001"
    out = ssh(nixlab, node, "systemd-run --unit=t-fail sh -c 'echo hello; exit 3'; echo rc=$?; sleep 1; "
              "systemctl show -p ActiveState,Result,ExecMainStatus,LoadState t-fail; "
              "journalctl -u t-fail -o cat; systemd-run -u t-fail true; echo rc=$?; systemctl reset-failed t-fail; "
              "systemctl show -p LoadState t-fail")
    assert out.stderr.splitlines()[0] == "Running as unit: t-fail.service"
    assert out.stdout.splitlines()[:5] == ["rc=0", "ActiveState=failed", "Result=exit-code", "ExecMainStatus=3",
                                           "LoadState=loaded"]
    assert "hello" in out.stdout and "t-fail.service: Failed with result 'exit-code'." in out.stdout
    assert out.stdout.splitlines()[-2:] == ["rc=1", "LoadState=not-found"]
    assert "Unit t-fail.service was already loaded" in out.stderr
    pipe = ssh(nixlab, node, "systemd-run --pipe --quiet --collect --unit=t-pipe sh -c 'echo out; echo err >&2; "
               "systemctl is-active t-pipe; exit 7'; echo rc=$?; systemctl show -p ActiveState,LoadState t-pipe")
    assert pipe.stdout == "out\nactive\nrc=7\nActiveState=inactive\nLoadState=not-found\n" and pipe.stderr == "err\n"
    detached = ssh(nixlab, node, "systemd-run -q -u t-long sleep 30; echo rc=$?; systemctl is-active t-long; "
                   "systemd-run --unit t-long true; echo rc=$?; systemd-run true 2>&1; systemctl stop t-long || true")
    assert detached.stdout.splitlines()[:3] == ["rc=0", "active", "rc=1"], detached
    assert re.fullmatch(r"Running as unit: run-u\d+\.service", detached.stdout.splitlines()[3]), detached


def test_pre_switch_checks_usage_and_nixos_rebuild_usage(nixlab: Lab) -> None:
    node = "lab-001"
    out = ssh(nixlab, node, "s=$(readlink -f /run/current-system)/bin/switch-to-configuration; $s check; echo rc=$?; "
              "$s frobnicate; echo rc=$?; nixos-rebuild frobnicate; echo rc=$?; "
              "cd /root && nixos-rebuild dry-build; echo rc=$?")
    assert out.stdout == "rc=0\nrc=1\nrc=2\nrc=0\n"
    assert "Usage: switch-to-configuration" in out.stderr and "invalid choice" in out.stderr


def test_module_reader_never_crashes_on_unknown_syntax(tmp_path: Path) -> None:
    from zetactl.lab.layout import nixlab as nix
    src = ('{ lib, ... }: with lib; let f = x: { a = x; }; s = "${f 1}"; in {\n'
           '  systemd.services.a = mkMerge [ { description = "A"; } ];\n'
           "  systemd.services.b = { script = ''\n    echo '''quoted''' ''${x}\n  ''; wantedBy = [ \"x.target\" ];\n"
           '    serviceConfig = { ExecStart = [ "" "/bin/true" ]; User = "nobody"; Nice = -5; }; };\n'
           "  systemd.services = { c = { enable = true; }; d.enable = false; };  /* zeta-lab: new-init */\n}\n")
    build = nix.evaluate([("m.nix", src)], "host")
    assert sorted(build.units) == ["b.service", "c.service", "nix-daemon.service", "sshd.service"]
    assert build.flags == ["new-init"]
    assert "WantedBy=x.target" in build.units["b.service"] and "Nice=-5" in build.units["b.service"]
    for cut in range(0, len(src), 7):
        nix.evaluate([("m.nix", src[:cut])], "host")
    assert nix.evaluate([("m.nix", src)], "host").name == build.name != nix.evaluate([("n.nix", src)], "host").name


def test_a_module_outside_the_imports_has_no_effect_until_imported(nixlab: Lab) -> None:
    node = "lab-002"
    before = ok(nixlab, node, "readlink /run/current-system")
    gens = generations(nixlab, node)
    # Neither /etc/nixos/loose.nix nor a folder zeta/default.nix does not read (zeta/sub/) is imported.
    ok(nixlab, node, r"""mkdir -p /etc/nixos/zeta/sub && cat > /etc/nixos/loose.nix <<'EOF'
{ ... }: {
  systemd.services.loose = { wantedBy = [ "multi-user.target" ]; };  # zeta-lab: activation-fails
}
EOF
cp /etc/nixos/loose.nix /etc/nixos/zeta/sub/loose.nix""")
    result = ssh(nixlab, node, "nixos-rebuild switch")
    assert result.returncode == 0, result
    assert "Failed to run activate script" not in result.stderr
    assert ok(nixlab, node, "readlink /run/current-system") == before and generations(nixlab, node) == gens
    assert ok(nixlab, node, "test -e /etc/systemd/system/loose.service || echo absent") == "absent\n"
    # imported: the same file now makes a generation
    ok(nixlab, node, "sed -i 's|./zeta ];|./zeta ./loose.nix ];|' /etc/nixos/configuration.nix")
    result = ssh(nixlab, node, "nixos-rebuild switch")
    assert result.returncode == 2 and "Failed to run activate script" in result.stderr, result
    assert "the following new units were started: loose.service" in result.stderr
    assert len(generations(nixlab, node)) == len(gens) + 1
    ok(nixlab, node, "sed -i 's| ./loose.nix ];| ];|' /etc/nixos/configuration.nix && "
       "rm -r /etc/nixos/loose.nix /etc/nixos/zeta/sub")
    back = ssh(nixlab, node, "nixos-rebuild switch")
    assert back.returncode == 0 and ok(nixlab, node, "readlink /run/current-system") == before, back


@pytest.mark.parametrize(("entry", "missing"), [("./missing.nix", "/etc/nixos/missing.nix"),
                                                ("./extra", "/etc/nixos/extra/default.nix")])
def test_a_missing_import_fails_the_build(nixlab: Lab, entry: str, missing: str) -> None:
    node = "lab-002"
    before = ok(nixlab, node, "readlink /run/current-system")
    gens = generations(nixlab, node)
    ok(nixlab, node, "mkdir -p /etc/nixos/extra && cp /etc/nixos/configuration.nix /root/configuration.nix && "
       f"sed -i 's|./zeta ];|./zeta {entry} ];|' /etc/nixos/configuration.nix")
    try:
        for action in ("switch", "build", "dry-build"):
            result = ssh(nixlab, node, f"cd /root && nixos-rebuild {action}")
            assert result.returncode == 1, result
            assert result.stderr.splitlines() == ["building the system configuration...",
                                                  f"error: getting status of '{missing}': No such file or directory"]
        assert ok(nixlab, node, "readlink /run/current-system") == before and generations(nixlab, node) == gens
    finally:
        ok(nixlab, node, "mv /root/configuration.nix /etc/nixos/configuration.nix && rmdir /etc/nixos/extra")
    assert ssh(nixlab, node, "nixos-rebuild switch").returncode == 0


def test_a_transient_unit_gets_only_systemds_path(nixlab: Lab) -> None:
    node = "lab-002"
    env = ssh(nixlab, node, "FROM_CALLER=c systemd-run --pipe --quiet --collect -E FROM_CALLER -E GIVEN=g -E UNSET "
              "python3 -c 'import json, os; print(json.dumps(dict(os.environ)))'")
    assert env.returncode == 0, env
    pairs = json.loads(env.stdout)
    assert re.fullmatch(r"[0-9a-f]{32}", pairs.pop("INVOCATION_ID"))
    assert pairs == {"FROM_CALLER": "c", "GIVEN": "g", "LANG": "C.UTF-8", "PATH": "/run/current-system/systemd/bin",
                     "UNSET": ""}
    out = ssh(nixlab, node, "rm -rf /tmp/np; systemd-run --pipe --quiet sh -c 'mkdir /tmp/np'; echo rc=$?; "
              "test -d /tmp/np || echo no-dir; "
              "systemd-run --pipe --quiet -E PATH sh -c 'mkdir /tmp/np'; echo rc=$?; "
              "systemd-run --pipe --quiet sh -c 'PATH=/usr/bin:/bin; mkdir /tmp/np/b'; echo rc=$?; "
              "systemd-run --pipe --quiet /bin/mkdir /tmp/np/c; echo rc=$?; "
              "systemd-run --pipe --quiet sh -c 'systemctl is-active sshd'; echo rc=$?; "
              "systemd-run --pipe --quiet no-such-tool; echo rc=$?; ls /tmp/np")
    assert out.stdout.splitlines() == ["rc=127", "no-dir", "rc=0", "rc=0", "rc=0", "active", "rc=0", "rc=1",
                                       "b", "c"], out
    assert "mkdir: not found" in out.stderr
    assert "Failed to find executable no-such-tool: No such file or directory" in out.stderr
    # detached, as a deployer's job runs: it fails, and the unit says so
    detached = ssh(nixlab, node, "systemd-run -q -u t-nopath sh -c 'mkdir /tmp/np/d'; sleep 1; "
                   "systemctl show -p ActiveState,Result,ExecMainStatus t-nopath; systemctl reset-failed t-nopath; "
                   "test -d /tmp/np/d || echo no-dir")
    assert detached.stdout == "ActiveState=failed\nResult=exit-code\nExecMainStatus=127\nno-dir\n", detached


def test_services_k3s_enable_declares_k3s_service(nixlab: Lab) -> None:
    from zetactl.lab.layout import nixlab as nix
    base = "{ ... }: { services.k3s.enable = true; }"
    units = nix.evaluate([("a.nix", base)], "h").units
    assert "Description=Lightweight Kubernetes\n" in units["k3s.service"]
    assert "ExecStart=/bin/sleep infinity\n" in units["k3s.service"]
    assert "WantedBy=multi-user.target" in units["k3s.service"]
    assert "k3s.service" not in nix.evaluate([("a.nix", '{ services.k3s.role = "agent"; }')], "h").units
    merged = nix.evaluate([("a.nix", base), ("b.nix", '{ systemd.services.k3s.environment.K3S_X = "1"; }')], "h")
    assert 'Environment="K3S_X=1"' in merged.units["k3s.service"]
    assert "Description=Lightweight Kubernetes\n" in merged.units["k3s.service"]
    # a reference to the option is not a definition of it
    assert "k3s.service" not in nix.evaluate([("a.nix", "{ x = config.services.k3s.enable; }")], "h").units
    # on a node: the seeded k3s.nix only sets the option; turning it off stops and removes the unit
    node = "lab-003"
    assert ok(nixlab, node, "systemctl is-active k3s; grep -c 'systemd\\.' /etc/nixos/zeta/k3s.nix || true") \
        == "active\n0\n"
    ok(nixlab, node, "sed -i 's/enable = true;/enable = false;/' /etc/nixos/zeta/k3s.nix")
    off = ssh(nixlab, node, "nixos-rebuild switch; systemctl is-active k3s; ls /etc/systemd/system")
    assert "stopping the following units: k3s.service" in off.stderr, off
    assert off.stdout.startswith("inactive\n") and "k3s.service" not in off.stdout
    ok(nixlab, node, "sed -i 's/enable = false;/enable = true;/' /etc/nixos/zeta/k3s.nix")
    on = ssh(nixlab, node, "nixos-rebuild switch; systemctl is-active k3s")
    assert "the following new units were started: k3s.service" in on.stderr and on.stdout == "active\n", on


def test_imports_are_followed_like_nix(tmp_path: Path) -> None:
    from zetactl.lab.layout import nixlab as nix
    files = {
        "configuration.nix": "{ imports = [ ./a.nix ./d (import ./not-an-import.nix) ]; } # builtins.readDir",
        "a.nix": "{ imports = [ ../nixos/a.nix ./configuration.nix ]; }",  # cycles are fine
        "b.nix": "{ }",  # not imported: configuration.nix names readDir in a comment only, and is no default.nix
        "d/default.nix": '{ imports = map (n: ./. + "/${n}") (builtins.attrNames (builtins.readDir ./.)); }',
        "d/x.nix": "{ }",
        "d/y.txt": "",
        "d/sub.nix/default.nix": "{ }",  # a folder is not a *.nix file
    }
    root = tmp_path / "etc" / "nixos"
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    read = nix.read_modules(root)
    assert [rel for rel, _ in read] == ["a.nix", "configuration.nix", "d/default.nix", "d/x.nix"]
    name = nix.evaluate(read, "h").name
    (root / "b.nix").write_text("{ changed }")
    assert nix.evaluate(nix.read_modules(root), "h").name == name
    (root / "d" / "x.nix").write_text("{ changed }")
    assert nix.evaluate(nix.read_modules(root), "h").name != name
    (root / "d" / "default.nix").unlink()
    with pytest.raises(nix.NixError, match=r"^error: getting status of '/etc/nixos/d/default\.nix': No such file"):
        nix.read_modules(root)
    (root / "configuration.nix").unlink()
    assert nix.read_modules(root) == []
