"""Every script zetactl sends to a node, as it is sent, checked by the real `shellcheck` (Debian's package).

The scripts are built by the code that sends them (the engine's probe and apply for every step kind, the
credential install, the NixOS switch and its job, the health sweep, the hub proofs and registry, node identity,
the lock session and the channel wrappers, the lab's boot), values included, then checked as POSIX sh. Every
shipped .sh file must appear in at least one of them.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from zetactl.remote import Sh, lines, script, source
from zetactl.steps import KINDS, Where

ROOT = Path(__file__).resolve().parent.parent
WHERE = Where("play.yml", 1)
HOSTILE = "/srv/it's \"odd\" $(touch /tmp/PWNED) `x` ${IFS}"


def _inner(command: Sh) -> str:
    """The script inside `sh -c '...'`."""
    words = shlex.split(command.text)
    assert words[:2] == ["sh", "-c"], words[:2]
    return words[2]


def _on_node(body: Sh) -> str:
    """A script as the runner runs it: after the prelude."""
    return lines(source("prelude.sh"), body).text


def built() -> dict[str, str]:
    from zetactl.agents import STATUS_SCRIPT
    from zetactl.engine import remote
    from zetactl.health.checks import CustomCheck, Severity, probe_script
    from zetactl.hubs import probe
    from zetactl.hubs.model import HubService
    from zetactl.hubs.registry import Entry, FileRegistry
    from zetactl.hubs.tenants import capacity_script
    from zetactl.inventory import Host
    from zetactl.lab.layout import boot_script
    from zetactl.nodes import add_key_script, remove_keys_script
    from zetactl.remote.runner import CHANNEL, RAW, lock_command
    from zetactl.steps.credential import Credential
    from zetactl.steps.nixos import NixosRebuild

    steps = [
        KINDS["directory"]({"path": HOSTILE, "mode": "0750", "owner": "nobody"}, WHERE),
        KINDS["file"]({"path": HOSTILE + "/f", "content": "it's $(x)\n", "mode": "0640"}, WHERE, want_content=True),
        KINDS["line_in_file"]({"path": HOSTILE + "/l", "line": "a'b", "create": True}, WHERE),
        KINDS["symlink"]({"path": HOSTILE + "/s", "target": HOSTILE, "force": True}, WHERE),
        KINDS["command"]({"cmd": "make", "creates": HOSTILE, "unless": "test -e /x", "chdir": HOSTILE}, WHERE),
        KINDS["systemd"]({"unit": "zeta-otto", "state": "restarted", "enabled": True, "daemon_reload": True}, WHERE),
        KINDS["nixos_rebuild"]({"config_dir": HOSTILE}, WHERE),
    ]
    items = list(enumerate(steps))
    observed = {"type": "link", "target": "/old", "show": "LoadState=loaded\nActiveState=active"}
    changes = [(k, s, s.decide(observed)) for k, s in items[:6]]
    credential = Credential.__new__(Credential)
    credential.record = SimpleNamespace(name="gh-token", target=SimpleNamespace(path=HOSTILE))  # type: ignore[assignment]
    credential.envelope = b"age-encryption.org/v1\n..."
    credential.areas = ("/run/zeta/creds", HOSTILE)
    rebuild = NixosRebuild({"config_dir": HOSTILE}, WHERE)
    assert isinstance(rebuild, NixosRebuild)
    host = Host(name="h", address="127.0.0.1", port=22, user="root", key_file=None, known_hosts=Path("k"),
                groups=("all",), vars={"zeta_health_disks": ["/", HOSTILE]})
    hub = HubService("h", "embedder", 8701, "http://127.0.0.1:8701", 1, 1)
    checks = probe.tenant_checks("acme@0123abcd", [hub], other_identity="beta@00000000")
    entry = Entry("A" * 12, "acme@0123abcd", "embedder", "0" * 64)
    return {
        "channel wrapper": _inner(CHANNEL),
        "raw wrapper": _inner(RAW),
        "lock session": _inner(lock_command(30, "run x from " + HOSTILE)),
        "engine probe": _on_node(remote.probe_script(items)),
        "engine apply": _on_node(remote.apply_script(changes, items)),
        "credential install": _on_node(credential.install_script()),
        "credential probe": _on_node(credential.probe_script()),
        "nixos start": _on_node(rebuild._start_script("/run/zeta/switch/r1")),
        "nixos job": rebuild.job_script("/run/zeta/switch/r1").text,
        "nixos wait": _on_node(script("nixos_wait.sh", S="/run/zeta/switch/r1", UNIT="zeta-switch.service")),
        "nixos confirm": _on_node(script("nixos_confirm.sh", S="/run/zeta/switch/r1", RECORD="/r", RUN_ID="r1",
                                         RB4=0)),
        "nixos ended": _on_node(script("nixos_ended.sh", S="/run/zeta/switch/r1")),
        "nixos journal": _on_node(script("nixos_journal.sh", UNIT="zeta-switch.service")),
        "health sweep": _on_node(probe_script(
            host, [CustomCheck("unit", "k3s.service", Severity.CRITICAL),
                   CustomCheck("command", "test -e " + HOSTILE, Severity.WARNING)], 5.0, ["gh-token"],
            [lines(Sh("("), probe.script(checks), Sh(")")), lines(Sh("("), Sh("zk=cap"), capacity_script(), Sh(")"))])),
        "hub proof": _on_node(probe.script(checks)),
        "registry change": _on_node(FileRegistry().change_script("embedder", [entry], {"B" * 12}, {"x@00000000"})),
        "registry read": _on_node(script("registry_read.sh", DIR="/var/lib/zeta/hubs/embedder")),
        "tenant files": _on_node(script("tenant_remove.sh", NAMES="hub-embedder.acme", PATHS="/run/zeta/creds/h",
                                        ENDPOINTS="/etc/zeta/hubs.env", GENS="/run/zeta/creds/.gen",
                                        STATE="/var/lib/zeta/creds")),
        "tenant generations": _on_node(lines(source("cred_generations.sh"), Sh("zc_generation 0 x /s"))),
        "keys add": _on_node(add_key_script("root", "ssh-ed25519 AAAA op")),
        "keys remove": _on_node(remove_keys_script("root", ["AAAA", "BBBB"], keep="CCCC")),
        "node register": _on_node(lines(script("node_register.sh", NODE_ID="abc", BY=HOSTILE),
                                        source("node_retire.sh"))),
        "agents": _on_node(STATUS_SCRIPT),
        "lab boot": boot_script().text,
    }


def shipped() -> list[Path]:
    return sorted([*(ROOT / "zetactl" / "remote" / "scripts").glob("*.sh"),
                   *(ROOT / "zetactl" / "lab" / "scripts").glob("*.sh")])


@pytest.fixture(scope="module")
def shellcheck() -> str:
    tool = shutil.which("shellcheck")
    if tool is None:
        pytest.fail("shellcheck is not installed: apt-get install shellcheck (./run setup installs it)")
    return tool


@pytest.mark.parametrize("name", sorted(built()))
def test_every_script_zetactl_sends_passes_shellcheck(name: str, shellcheck: str, tmp_path: Path) -> None:
    text = built()[name]
    path = tmp_path / "script.sh"
    path.write_text(text)
    # SC2016 ("expressions don't expand in single quotes") is the builder doing its job: a value is one quoted word
    proc = subprocess.run([shellcheck, "--shell=sh", "--exclude=SC2016", str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, f"{name}:\n{proc.stdout}"


def test_every_shipped_script_is_checked() -> None:
    texts = "\n".join(built().values())
    missing = [p.name for p in shipped() if p.read_text().splitlines()[0] not in texts]
    assert not missing, missing
    assert HOSTILE not in texts.replace(shlex.quote(HOSTILE), "")  # every hostile value arrived quoted


def test_shellcheck_fails_a_script_that_is_wrong(shellcheck: str, tmp_path: Path) -> None:
    path = tmp_path / "bad.sh"
    path.write_text('rm -rf $dir/old\n')  # an unquoted value: what the builder exists to prevent
    assert subprocess.run([shellcheck, "--shell=sh", str(path)], capture_output=True).returncode != 0
