"""Secret-leak sweeps for the commands the other sweeps leave out (issue 9): node identity, the read-only
commands, plan, the lab and the passphrase blobs.

Each test plants the secret really in play as a canary (private key material, a credential installed on the
nodes, a sensitive file's content, a blob's passphrase and value), runs its commands, good and failing, with
`ZETACTL_LOG=debug` to a log file and asyncssh at debug level 2, samples the command lines of every process in
the lab nodes, then searches every stdout and stderr, the log, the remote command lines, every file under the
test's directory (ZETACTL_HOME: journals, results, records, the health database; the lab's inventory and
known_hosts; --output files) and the nodes' trees. Positive controls show that each canary is where it
belongs and that the capture worked, so an empty search means something.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.conftest import ROOT, Result, _lab, needs_lab, totals
from tests.e2e.canary import CmdlineSampler, CredCli, _hits, node_file
from zetactl.inventory import load_inventory, writer
from zetactl.lab import Lab
from zetactl.lab.layout import fingerprint
from zetactl.remote.runner import CHANNEL
from zetactl.transport.known_hosts import unpin

pytestmark = [needs_lab, pytest.mark.skipif(not shutil.which("age") or not shutil.which("ssh-keygen"),
                                            reason="needs the age tool and ssh-keygen")]

# asyncssh at debug level 2 (its command lines, channel requests, environment); zetactl's own ZETACTL_LOG
# and ZETACTL_LOG_FILE configure the logging, so the log file is the product's own, with its redaction filter
SITE = """\
import os
if os.environ.get("SWEEP_ASYNCSSH_DEBUG"):
    import asyncssh
    asyncssh.set_debug_level(2)
"""
CREDS = "/run/zeta/creds"


# -- the sweep -----------------------------------------------------------------------------------
class SweepCli(CredCli):
    """The real CLI with debug logging on; keeps every stdout and stderr as bytes, for the search."""

    def __init__(self, home: Path, env: dict[str, str]) -> None:
        super().__init__(home, env)
        self.raw: list[tuple[str, bytes]] = []

    def __call__(self, *args: str, timeout: float = 180, check_rc: int | None = None,  # type: ignore[override]
                 input: bytes | None = None, pass_fds: tuple[int, ...] = (), log_file: bool = True) -> Result:
        """`log_file=False`: the debug log goes to stderr (for lab commands: lab nodes inherit the caller's
        environment, and a node does not see the controller's /tmp)."""
        env = dict(self.env)
        if not log_file:
            env.pop("ZETACTL_LOG_FILE", None)
        proc = subprocess.run([sys.executable, "-m", "zetactl", *args], capture_output=True, env=env,
                              timeout=timeout, cwd=ROOT, input=input, pass_fds=pass_fds,
                              stdin=None if input is not None else subprocess.DEVNULL)
        result = Result(list(args), proc.returncode, proc.stdout.decode(errors="replace"),
                        proc.stderr.decode(errors="replace"))
        self.outputs += [result.stdout, result.stderr]
        self.raw += [(f"stdout of {' '.join(args)}", proc.stdout), (f"stderr of {' '.join(args)}", proc.stderr)]
        if check_rc is not None:
            assert result.returncode == check_rc, result
        return result


@dataclass
class Sweep:
    work: Path
    cli: SweepCli
    log: Path
    lab: Lab | None = None
    seen: set[str] = field(default_factory=set)  # command lines of the nodes' processes, while sampling
    node_files: list[tuple[str, bytes]] = field(default_factory=list)  # the nodes' /run and /tmp, while up

    @classmethod
    def start(cls, work: Path, lab: Lab | None = None) -> Sweep:
        """The CLI with ZETACTL_LOG=debug to a file and asyncssh at debug level 2, for the nodes of LAB."""
        site = work / "site"
        site.mkdir(parents=True, exist_ok=True)
        (site / "sitecustomize.py").write_text(SITE)
        log = work / "zetactl-debug.log"
        cli = SweepCli(work / "zetactl-home", {"PYTHONPATH": str(site), "SWEEP_ASYNCSSH_DEBUG": "1",
                                               "ZETACTL_LOG": "debug", "ZETACTL_LOG_FILE": str(log)})
        return cls(work, cli, log, lab)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        """Sample the command lines of the nodes' processes meanwhile (the sampler keeps a core busy: only
        around the commands that run something on the nodes)."""
        assert self.lab is not None
        sampler = CmdlineSampler(self.lab)
        sampler.start()
        try:
            yield
        finally:
            sampler.stop.set()
            sampler.join()
            self.seen |= sampler.seen

    def remote_commands(self) -> list[str]:
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [line.split("  Command: ", 1)[1] for line in text.splitlines() if "  Command: " in line]

    def check_capture(self, *, ssh: bool = True) -> None:
        """Positive controls: the log is zetactl's debug log, with asyncssh's command lines; the sampler saw
        the nodes' processes."""
        assert self.log.is_file()  # ZETACTL_LOG_FILE was opened (commands without SSH may log nothing)
        if ssh:
            text = self.log.read_text(errors="replace")
            scripts = [c for c in self.remote_commands() if CHANNEL.text.startswith(c)]  # scripts on stdin
            assert " asyncssh DEBUG " in text and "Encryption algs:" in text, text[:2000]  # asyncssh's level 2
            assert scripts, self.remote_commands()[:20]
        if self.lab is not None:
            assert any("sshd" in c for c in self.seen), sorted(self.seen)[:20]

    def snapshot_nodes(self, skip: Iterable[str] = ()) -> None:
        """Keep what the running nodes' /run and /tmp hold now (tmpfs: gone once a node stops), for the search;
        `skip`: node paths where a canary belongs. /run/zeta-lab/node is the node's directory in the lab's."""
        assert self.lab is not None
        for node in self.lab.nodes():
            if not node.alive():
                continue
            skipped = (node.path("/run/zeta-lab/node"), *(node.path(p) for p in skip))
            for root in (node.path("/run"), node.path("/tmp")):
                for dirpath, dirnames, filenames in os.walk(root):
                    if any(Path(dirpath).is_relative_to(p) for p in skipped):
                        dirnames[:] = []
                        continue
                    for name in filenames:
                        path = Path(dirpath) / name
                        if path in skipped or path.is_symlink() or not path.is_file():
                            continue  # a link, a socket or a fifo holds nothing to search
                        with contextlib.suppress(OSError):
                            self.node_files.append((f"{node.name}:{path}", path.read_bytes()))

    def search(self, needles: list[bytes], *, trees: Iterable[Path], skip: Iterable[Path] = (),
               node_skip: Iterable[str] = ()) -> list[str]:
        """Every place a canary must not be: outputs, the log, remote command lines, files, node trees."""
        assert needles and all(len(n) >= 16 for n in needles), needles
        hits = [f"{where}: {n[:24]!r}" for where, data in self.cli.raw for n in needles if n in data]
        commands = self.remote_commands() + sorted(self.seen)
        hits += [f"remote command line {c[:120]!r}" for c in commands for n in needles if n in c.encode()]
        hits += search_trees([self.work, *trees], needles, skip)
        if self.lab is not None:
            self.snapshot_nodes(node_skip)
            assert self.node_files, "no node file was read"
            hits += [f"{where}: {n[:24]!r}" for where, data in self.node_files for n in needles if n in data]
        return hits


def search_trees(roots: Iterable[Path], needles: list[bytes], skip: Iterable[Path] = ()) -> list[str]:
    """Byte search of every file under the roots; `skip` names files or directories where a canary belongs."""
    skipped = tuple(skip)
    found: list[str] = []
    for root in roots:
        if root.exists():
            found += _hits(root, needles, skip=tuple(s for s in skipped if s.is_dir()))
    return [hit for hit in found if not any(hit.startswith(f"{s}: ") for s in skipped)]


def key_needles(private_key: Path) -> list[bytes]:
    """What gives a private key away: its base64 body lines (all but the first, which is the same in every
    unencrypted OpenSSH ed25519 key) and its 32-byte seed, raw, hex and base64."""
    data = private_key.read_bytes()
    key = serialization.load_ssh_private_key(data, None)
    assert isinstance(key, Ed25519PrivateKey)
    seed = key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                             serialization.NoEncryption())
    body = [line.strip() for line in data.splitlines() if line.strip() and not line.startswith(b"-----")]
    return [line for line in body[1:] if len(line) >= 40] + [seed, seed.hex().encode(),
                                                              base64.b64encode(seed).rstrip(b"=")]


def keygen(path: Path, comment: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)], check=True)
    return path


def host_key(lab: Lab, name: str) -> Path:
    return lab.dir / "nodes" / name / "upper" / "etc" / "ssh" / "ssh_host_ed25519_key"


def host_fingerprint(lab: Lab, name: str) -> str:
    """As read on the node's console: its own public host key file."""
    return fingerprint(host_key(lab, name).with_suffix(".pub").read_text())


def canary(label: str) -> bytes:
    return f"zeta-canary-{label}-{uuid.uuid4().hex}".encode()


def canary_needles(value: bytes) -> list[bytes]:
    """A canary and the two halves of its random part (a message that cuts a value short still shows one)."""
    random = value.strip().rsplit(b"-", 1)[1]
    return [value.strip(), random[:16], random[16:]]


# -- labs ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sweeplab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("sweeplab"), 4, subnet=180)


@pytest.fixture
def idlab(tmp_path: Path) -> Iterator[tuple[Lab, Path]]:
    """Two registered nodes and one fresh from the installer (lab-003), which takes only the bootstrap key."""
    bootstrap = keygen(tmp_path / "keys" / "bootstrap", "installer")
    for lab in _lab(tmp_path / "idlab", 2, subnet=181):
        lab.fresh(1, bootstrap.with_name("bootstrap.pub"))
        yield lab, bootstrap


# -- 1. node identity ------------------------------------------------------------------------------
def test_node_commands_leak_no_private_key(idlab: tuple[Lab, Path], tmp_path: Path) -> None:
    lab, bootstrap = idlab
    sweep = Sweep.start(tmp_path / "sweep", lab)
    cli, inv = sweep.cli, str(lab.inventory)
    fresh = lab.node("lab-003").address
    old_host_key = key_needles(host_key(lab, "lab-001"))
    with sweep.sampling():
        # failing: nothing answers at the address; the wrong fingerprint; homelab mode on a node that takes
        # only the bootstrap key
        unreachable = cli("node", "register", "ghost", "--address", "127.0.181.250", "--role", "worker-gpu",
                          "--host-key-fingerprint", host_fingerprint(lab, "lab-003"), "-i", inv,
                          "--connect-timeout", "3")
        assert unreachable.returncode == 3 and "cannot read the host key" in unreachable.stderr, unreachable
        wrong = cli("node", "register", "lab-003", "--address", fresh, "--role", "worker-gpu",
                    "--host-key-fingerprint", host_fingerprint(lab, "lab-001"), "--bootstrap-key", str(bootstrap),
                    "-i", inv, check_rc=2)
        assert "nothing was pinned" in wrong.stderr
        refused = cli("node", "register", "lab-003", "--address", fresh, "--role", "worker-gpu",
                      "--host-key-fingerprint", host_fingerprint(lab, "lab-003"), "-i", inv, check_rc=3)
        assert "login refused" in refused.stderr, refused
        # production mode, then a per-node identity
        cli("node", "register", "lab-003", "--address", fresh, "--role", "worker-gpu", "--host-key-fingerprint",
            host_fingerprint(lab, "lab-003"), "--bootstrap-key", str(bootstrap), "-i", inv, check_rc=0)
        assert load_inventory(lab.inventory).host("lab-003").vars["zeta_bootstrap_key"] == str(bootstrap)
        rotated = cli("node", "rotate-identity", "lab-003", "-i", inv, check_rc=0)
        assert "proven refused" in rotated.stderr, rotated
        per_node = cli.home / "keys" / "lab-003" / "id_ed25519"
        assert load_inventory(lab.inventory).host("lab-003").key_file == per_node
        # homelab mode: lab-002 joins with the operator's existing access
        inventory = load_inventory(lab.inventory)
        writer.remove_host(lab.inventory, "lab-002")
        unpin(lab.known_hosts, inventory.host("lab-002"))
        homelab = cli("node", "register", "lab-002", "--address", lab.node("lab-002").address, "--role",
                      "worker-gpu", "--host-key-fingerprint", host_fingerprint(lab, "lab-002"), "-i", inv,
                      check_rc=0)
        assert "homelab mode" in homelab.stderr, homelab
        # a reinstalled machine: refused until re-pinned (rekey-host, trust), wrong fingerprints refused
        old_fingerprint = host_fingerprint(lab, "lab-001")
        lab.rekey("lab-001")
        changed = cli("run", "true", "-i", inv, "--limit", "lab-001", check_rc=3)
        assert "host key CHANGED" in changed.stdout, changed
        cli("node", "rekey-host", "lab-001", "--fingerprint", old_fingerprint, "-i", inv, check_rc=2)
        cli("node", "rekey-host", "lab-001", "--fingerprint", host_fingerprint(lab, "lab-001"), "-i", inv,
            check_rc=0)
        cli("node", "trust", "lab-001", "--fingerprint", "MD5:00", "-i", inv, check_rc=4)
        cli("node", "trust", "lab-001", "--fingerprint", host_fingerprint(lab, "lab-001"), "-i", inv, check_rc=0)
        cli("run", "true", "-i", inv, "--limit", "lab-001", check_rc=0)
        # retire: the control-plane floor, an unreachable node (its per-node key made, never installed), one
        # on its per-node key
        floor = cli("node", "retire", "lab-001", "-i", inv, check_rc=2)
        assert "--force" in floor.stderr
        sweep.snapshot_nodes()  # lab-002's /run and /tmp, before it goes down
        lab.stop_node("lab-002")
        cli("node", "rotate-identity", "lab-002", "-i", inv, "--connect-timeout", "3", check_rc=3)
        cli("node", "retire", "lab-002", "-i", inv, "--connect-timeout", "3", check_rc=2)
        cli("node", "retire", "lab-002", "-i", inv, "--connect-timeout", "3", "--force", check_rc=0)
        cli("node", "retire", "lab-003", "-i", inv, check_rc=0)

    # positive controls: the keys are where they belong, the retired node lost them, the capture worked
    keys = {"operator": lab.operator_key, "bootstrap": bootstrap, "lab-003 per-node": per_node,
            "lab-002 per-node": cli.home / "keys" / "lab-002" / "id_ed25519",
            **{f"{n} host": host_key(lab, n) for n in ("lab-001", "lab-002", "lab-003")}}
    needles = old_host_key + [n for path in keys.values() for n in key_needles(path)]
    for name, path in keys.items():
        assert search_trees([path.parent], key_needles(path)), name  # the search finds a key where it is
    assert lab.node("lab-003").path("/etc/ssh/authorized_keys.d/root").read_text().strip() == ""
    assert set(load_inventory(lab.inventory).hosts) == {"lab-001"}
    sweep.check_capture()

    skip = [*keys.values(), tmp_path / "keys"]
    hits = sweep.search(needles, trees=[lab.dir], skip=skip)
    assert not hits, hits


# -- 2. the read-only commands, with a credential installed ----------------------------------------
TOUCH = f"sha256sum {CREDS}/sw-token | cut -c1-64; stat -L -c %a {CREDS}/sw-token"  # reads it, never shows it


def test_read_only_commands_leak_no_installed_credential(sweeplab: Lab, tmp_path: Path) -> None:
    lab = sweeplab
    sweep = Sweep.start(tmp_path / "sweep", lab)
    cli, inv = sweep.cli, str(lab.inventory)
    values = tmp_path / "values"  # the source, outside ZETACTL_HOME and the sweep
    values.mkdir()
    value = canary("credential") + b"\n"
    (values / "token").write_bytes(value)
    digest = hashlib.sha256(value).hexdigest()
    hosts = ["lab-001", "lab-002", "lab-003", "lab-004"]

    def push() -> dict[str, int]:
        doc = cli("creds", "push", "sw-token", "-i", inv, "--format", "json", check_rc=0).json()
        return {h: int(d["changed"]) for h, d in doc["hosts"].items()}

    with sweep.sampling():
        cli("creds", "seal", "sw-token", "--hosts", "all", "-i", inv, "--from-file", str(values / "token"),
            check_rc=0)
        assert push() == dict.fromkeys(hosts, 1)
        assert push() == dict.fromkeys(hosts, 0)
        for host in hosts:  # positive control: the canary is installed on every node
            assert node_file(lab, host, f"{CREDS}/sw-token").read_bytes() == value, host
        # health: table, json, prometheus to a file (node_exporter's textfile collector)
        document = cli("health", "-i", inv, "--format", "json").json()
        assert {h: {f["check"]: f["severity"] for f in d["findings"]}["credential:sw-token"]
                for h, d in document["hosts"].items()} == dict.fromkeys(hosts, "OK"), document
        assert cli("health", "-i", inv).returncode in (0, 1, 2)
        cli("health", "-i", inv, "--format", "prometheus", "--output", str(sweep.work / "zeta.prom"))
        # run, agents: commands that read the credential without showing it; one fails on the node
        ran = cli("run", TOUCH, "-i", inv, "--format", "json", check_rc=0).json()
        assert {h: d["stdout"] for h, d in ran["hosts"].items()} == dict.fromkeys(hosts, f"{digest}\n400\n")
        cli("run", f"cmp {CREDS}/sw-token /etc/hostname", "-i", inv, "--limit", "lab-001", check_rc=2)
        cli("agents", "status", "-i", inv)
        # failing: a node down (unreachable), then back with an empty /run (the credential is missing)
        sweep.snapshot_nodes(skip=[f"{CREDS}/.gen"])
        lab.stop_node("lab-004")
        try:
            down = cli("health", "-i", inv, "--format", "json", check_rc=2).json()
            assert down["hosts"]["lab-004"]["findings"][0]["severity"] == "CRITICAL"
            cli("run", TOUCH, "-i", inv, "--connect-timeout", "3", check_rc=3)
            cli("agents", "status", "-i", inv, "--connect-timeout", "3", "--format", "json")
        finally:
            lab.start_node("lab-004")
        missing = cli("health", "-i", inv, "--format", "json", check_rc=2).json()
        assert any("missing" in f["message"] for f in missing["hosts"]["lab-004"]["findings"]), missing
    # what reads only the controller's files: health history, inventory, the runs the pushes left
    assert "credential:sw-token" in cli("health", "--history", "lab-004", check_rc=0).stdout
    cli("health", "-i", inv, "--format", "xml", check_rc=3)
    cli("inventory", "list", "-i", inv, "--format", "json", check_rc=0)
    cli("inventory", "show", "lab-001", "-i", inv, check_rc=0)
    cli("inventory", "show", "lab-004", "-i", inv, "--format", "json", check_rc=0)
    cli("inventory", "show", "nosuch", "-i", inv, check_rc=4)
    cli("inventory", "graph", "-i", inv, check_rc=0)
    cli("runs", "list", check_rc=0)
    first_run, second_run = cli.run_ids()
    cli("runs", "show", first_run, "--events", check_rc=0)
    cli("runs", "show", second_run, "--events", "--format", "json", check_rc=0)
    cli("runs", "show", "19700101-000000-0000", check_rc=4)

    assert (cli.home / "health.sqlite").stat().st_size > 0 and "zeta_" in (sweep.work / "zeta.prom").read_text()
    for host in hosts[:3]:
        assert search_trees([lab.node(host).path(f"{CREDS}/.gen/sw-token")], [value.strip()]), host
    sweep.check_capture()
    needles = [*canary_needles(value), *key_needles(lab.operator_key)]
    hits = sweep.search(needles, trees=[lab.dir], skip=[values, lab.operator_key], node_skip=[f"{CREDS}/.gen"])
    assert not hits, hits


# -- 3. plan, with sensitive files -----------------------------------------------------------------
PLAY = """\
hosts: all
steps:
  - directory: {path: /etc/sweep, mode: "0700"}
  - name: token
    file: {path: /etc/sweep/token, source: token.txt, mode: "0600", sensitive: true}
  - name: api env
    template: {src: api.env.j2, dest: /etc/sweep/api.env, mode: "0600", sensitive: true}
"""
BROKEN = """\
hosts: all
steps:
  - template: {src: %s, dest: /etc/sweep/broken, sensitive: %s}
"""


def test_plan_and_diff_leak_no_sensitive_file_content(sweeplab: Lab, tmp_path: Path) -> None:
    lab = sweeplab
    sweep = Sweep.start(tmp_path / "sweep", lab)
    cli, inv = sweep.cli, str(lab.inventory)
    play = tmp_path / "play"  # holds the canaries: outside the sweep's tree
    (play / "templates").mkdir(parents=True)
    secret = {label: canary(label).decode() for label in ("source", "template", "syntax", "python", "filter",
                                                            "undefined", "inline")}
    (play / "token.txt").write_text(f"token={secret['source']}\n")
    (play / "templates" / "api.env.j2").write_text(f"API_KEY={secret['template']}\nHOST={{{{ inventory_hostname }}}}\n")
    (play / "play.yml").write_text(PLAY)
    planned = cli("plan", str(play / "play.yml"), "-i", inv, "--format", "json", check_rc=0).json()
    targets = ["/etc/sweep", "/etc/sweep/token", "/etc/sweep/api.env"]
    assert {h: [s["target"] for s in steps] for h, steps in planned["hosts"].items()} == {
        h: targets for h in ("lab-001", "lab-002", "lab-003", "lab-004")}
    cli("plan", str(play / "play.yml"), "-i", inv, check_rc=0)
    cli("plan", str(play / "play.yml"), "-i", inv, "--limit", "lab-001", "-e", "extra=1", check_rc=0)
    # failing: sensitive templates that cannot be rendered, with the secret on the failing line
    broken = {
        "syntax": f"KEY={secret['syntax']} {{{{ }}}}\n",
        "python": f"KEY={secret['python']} {{{{ inventory_hostname + 1 }}}}\n",  # a Python error, not Jinja's
        "filter": f"KEY={{{{ '{secret['filter']}' | filesizeformat }}}}\n",  # its message quotes the value
        "undefined": f"KEY={secret['undefined']} {{{{ no_such_variable }}}}\n",
    }
    for label, text in broken.items():
        (play / f"{label}.j2").write_text(text)
        (play / f"{label}.yml").write_text(BROKEN % (f"{label}.j2", "true"))
        failed = cli("plan", str(play / f"{label}.yml"), "-i", inv)
        assert failed.returncode == 4 and f"{label}.j2:1: " in failed.stderr, failed
    (play / "inline.yml").write_text(
        "hosts: all\nsteps:\n  - file: {path: /etc/sweep/inline, sensitive: true, content: "
        f"\"KEY={secret['inline']} {{{{ inventory_hostname + 1 }}}}\"}}\n")
    assert cli("plan", str(play / "inline.yml"), "-i", inv).returncode == 4
    (play / "missing.yml").write_text(BROKEN % ("no-such.j2", "true"))
    cli("plan", str(play / "missing.yml"), "-i", inv, check_rc=4)
    # positive control: the same error in a template that is not sensitive shows what it rendered
    twin = canary("not-sensitive").decode()
    (play / "twin.j2").write_text(f"KEY={{{{ '{twin}' | filesizeformat }}}}\n")
    (play / "twin.yml").write_text(BROKEN % ("twin.j2", "false"))
    shown = cli("plan", str(play / "twin.yml"), "-i", inv, check_rc=4)
    assert twin in shown.stderr and "twin.j2:1: " in shown.stderr, shown
    # what plan rendered, deployed with --diff (plan has no diff of its own): shown changed, never shown; twice
    with sweep.sampling():
        deploy = ["deploy", str(play / "play.yml"), "-i", inv, "--limit", "lab-001", "--diff"]
        check = cli(*deploy, "--check", check_rc=0)
        assert check.stdout.count("sensitive content changed (not shown)") == 2, check
        assert totals(cli(*deploy, "--format", "json", check_rc=0).json(), "changed") == 3
        assert totals(cli(*deploy, "--format", "json", check_rc=0).json(), "changed") == 0
    assert node_file(lab, "lab-001", "/etc/sweep/token").read_text() == f"token={secret['source']}\n"
    rendered = node_file(lab, "lab-001", "/etc/sweep/api.env").read_text()
    assert rendered == f"API_KEY={secret['template']}\nHOST=lab-001\n", rendered
    for run_id in cli.run_ids():
        cli("runs", "show", run_id, "--events", "--format", "json", check_rc=0)

    sweep.check_capture()
    needles = [n for s in secret.values() for n in canary_needles(s.encode())]
    hits = sweep.search(needles, trees=[lab.dir], skip=[lab.dir / "nodes" / "lab-001" / "upper" / "etc" / "sweep"])
    assert not hits, hits


# -- 4. the lab and the passphrase blobs -----------------------------------------------------------
@pytest.fixture
def cli_lab(tmp_path: Path) -> Iterator[Lab]:
    """A lab the test starts with `zetactl lab up` (subnet 182), in the sweep's tree; stopped at teardown."""
    lab = Lab(tmp_path / "sweep" / "lab", subnet=182)
    try:
        yield lab
    finally:
        lab.down()


def test_lab_and_blob_commands_leak_no_key_passphrase_or_value(cli_lab: Lab, tmp_path: Path) -> None:
    lab = cli_lab
    directory = lab.dir  # searched whole, but for the key files that belong there
    sweep = Sweep.start(tmp_path / "sweep", lab)
    cli = sweep.cli
    secrets_dir = tmp_path / "secrets"  # the operator's own files: the sources of the canaries
    bootstrap = keygen(secrets_dir / "bootstrap", "installer")
    passphrase, other = canary("passphrase"), canary("other-passphrase")
    value, stdin_value = canary("blob-value") + b"\n", canary("stdin-value")
    for name, data in (("passphrase", passphrase + b"\n"), ("other", other), ("value", value)):
        (secrets_dir / name).write_bytes(data)
        (secrets_dir / name).chmod(0o600)
    (secrets_dir / "open").write_bytes(passphrase)
    (secrets_dir / "open").chmod(0o644)
    (secrets_dir / "bad-utf8").write_bytes(b"\xff" + passphrase)
    (secrets_dir / "bad-utf8").chmod(0o600)
    usb = tmp_path / "usb"
    restored = tmp_path / "restored"  # the value's destination, like /run/zeta/creds
    labdir = ["--dir", str(directory)]

    def blob(*args: str, fd_file: str, check_rc: int | None = None) -> Result:
        """`creds ARGS --passphrase-fd N`, N an open descriptor on FD_FILE (like `3< file`)."""
        fd = os.open(secrets_dir / fd_file, os.O_RDONLY)
        try:
            return cli("creds", *args, "--passphrase-fd", str(fd), pass_fds=(fd,), check_rc=check_rc)
        finally:
            os.close(fd)

    cli("lab", "up", "2", *labdir, "--subnet", "182", log_file=False, check_rc=0)
    cli("lab", "status", *labdir, log_file=False, check_rc=0)
    # fresh nodes take the bootstrap key's public half; its private half is refused
    wrong = cli("lab", "fresh", "1", "--bootstrap-key", str(bootstrap), *labdir, log_file=False, check_rc=2)
    assert "give the .pub file" in wrong.stderr and [n.name for n in lab.nodes()] == ["lab-001", "lab-002"], wrong
    cli("lab", "fresh", "1", "--bootstrap-key", str(secrets_dir / "nosuch.pub"), *labdir, log_file=False,
        check_rc=2)
    listed = cli("lab", "fresh", "1", "--bootstrap-key", f"{bootstrap}.pub", *labdir, "--format", "json",
                 log_file=False, check_rc=0).json()
    assert [r["node"] for r in listed] == ["lab-003"]
    cli("lab", "status", *labdir, "--format", "json", log_file=False, check_rc=0)
    # seal-blob: the passphrase from a descriptor or a 0600 file; the value from a file or stdin
    usb.mkdir()
    blob("seal-blob", "k3s-token", "--usb-id", "USB-1", "--out", str(usb / "k3s-token.age"),
         "--from-file", str(secrets_dir / "value"), fd_file="passphrase", check_rc=0)
    cli("creds", "seal-blob", "gh-token", "--usb-id", "USB-1", "--out", str(usb / "gh-token.age"), "--stdin",
        "--passphrase-file", str(secrets_dir / "other"), input=stdin_value, check_rc=0)
    assert value not in (usb / "k3s-token.age").read_bytes()  # ciphertext
    # failing seals: a readable passphrase file, stdin asked twice, a closed descriptor
    for failing in (["--passphrase-file", str(secrets_dir / "open")], ["--stdin", "--passphrase-fd", "0"],
                    ["--passphrase-fd", "9"]):
        source = [] if "--stdin" in failing else ["--from-file", str(secrets_dir / "value")]
        cli("creds", "seal-blob", "x", "--usb-id", "USB-1", "--out", str(usb / "x.age"), *source, *failing,
            input=value, check_rc=4)
    # open-blob: right, then every refusal
    blob("open-blob", str(usb / "k3s-token.age"), "--usb-id", "USB-1", "--name", "k3s-token", "--out",
         str(restored / "k3s-token"), fd_file="passphrase", check_rc=0)
    assert (restored / "k3s-token").read_bytes() == value  # positive control: the blob holds the value
    k3s = ["open-blob", str(usb / "k3s-token.age"), "--out", str(restored / "x")]
    refusals = [blob(*k3s, "--usb-id", "USB-1", fd_file="other"),
                blob(*k3s, "--usb-id", "USB-2", fd_file="passphrase"),
                blob(*k3s, "--usb-id", "USB-1", "--name", "gh-token", fd_file="passphrase"),
                cli("creds", *k3s, "--usb-id", "USB-1", "--passphrase-file", str(secrets_dir / "open")),
                cli("creds", *k3s, "--usb-id", "USB-1", "--passphrase-file", str(secrets_dir / "bad-utf8")),
                cli("creds", "open-blob", str(secrets_dir / "value"), "--usb-id", "USB-1", "--out",
                    str(restored / "x"), "--passphrase-file", str(secrets_dir / "passphrase"))]
    assert all(r.returncode != 0 for r in refusals), refusals
    assert [r.returncode for r in refusals] == [4] * len(refusals), refusals  # clear refusals, no traceback
    assert "not UTF-8" in refusals[4].stderr and "Traceback" not in "".join(r.stderr for r in refusals)
    assert not (restored / "x").exists()
    # the boot-time restore: the USB in lab-002 (one blob the passphrase opens, one it does not), a reboot
    lab.insert_usb("lab-002", [usb / "k3s-token.age", usb / "gh-token.age"], "USB-1",
                   secrets_dir / "passphrase")
    sweep.snapshot_nodes()
    with sweep.sampling():  # the restore's command line, inside the node
        cli("lab", "reboot", "lab-002", *labdir, log_file=False, check_rc=0)
    assert node_file(lab, "lab-002", f"{CREDS}/k3s-token").read_bytes() == value
    restore_log = lab.node("lab-002").path("/run/zeta-lab/restore.log").read_text()
    assert "restored k3s-token" in restore_log and "gh-token.age: refused" in restore_log, restore_log
    cli("lab", "status", *labdir, log_file=False, check_rc=0)
    sweep.snapshot_nodes(skip=[f"{CREDS}/k3s-token"])
    cli("lab", "down", *labdir, log_file=False, check_rc=0)

    assert not lab.nodes()
    keys = {"operator": lab.operator_key, "bootstrap": bootstrap,
            **{f"{n} host": host_key(lab, n) for n in ("lab-001", "lab-002", "lab-003")}}
    needles = [n for c in (passphrase, other, value, stdin_value) for n in canary_needles(c)]
    needles += [n for k in keys.values() for n in key_needles(k)]
    for name, path in keys.items():
        assert search_trees([path.parent], key_needles(path)), name
    sweep.check_capture(ssh=False)
    skip = [*keys.values(), secrets_dir, restored, directory / "nodes" / "lab-002" / "usb" / "passphrase"]
    hits = sweep.search(needles, trees=[usb], skip=skip)
    assert not hits, hits
