"""`zetactl tenant` and `zetactl hub` against the lab's hub services on real sshd nodes (issue 5).

One lab of 6 nodes (lab-004 is the admin node running the embedder and voice hubs); the tests run in file order
and share the tenants they make. Every CLI call runs with asyncssh's debug log on and a sampler reading the
command lines of every process in the nodes, so the last test can search every output, log, journal, record
and remote command line for every token ever issued.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, _lab, needs_lab
from tests.e2e.canary import SITECUSTOMIZE, CmdlineSampler, CredCli, _hits, node_file
from zetactl.lab import Lab
from zetactl.remote.runner import CHANNEL

pytestmark = needs_lab

HUB = "lab-004"
KINDS = ("embedder", "voice")
PORTS = {"embedder": 8701, "voice": 8702}
ISSUED: list[bytes] = []  # every token that reached a tenant machine, for the canary search


@pytest.fixture(scope="module")
def hublab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    yield from _lab(tmp_path_factory.mktemp("hublab"), 6, subnet=170)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("hubwork")
    (work / "site").mkdir()
    (work / "site" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return work


@pytest.fixture(scope="module")
def hcli(work: Path) -> CredCli:
    return CredCli(work / "home", {"PYTHONPATH": str(work / "site"), "CREDTEST_DEBUG_LOG": str(work / "debug.log")})


@pytest.fixture(scope="module")
def sampler(hublab: Lab) -> Iterator[CmdlineSampler]:
    sampler = CmdlineSampler(hublab)
    sampler.start()
    yield sampler
    sampler.stop.set()
    sampler.join()


def hub_address(lab: Lab) -> str:
    return lab.node(HUB).address


def registry(lab: Lab, kind: str) -> list[list[str]]:
    path = lab.node(HUB).path(f"/var/lib/zeta/hubs/{kind}/registry")
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line and not line.startswith("#")]


def token(lab: Lab, machine: str, kind: str) -> bytes:
    """The tenant machine's token for KIND (read through the node's filesystem, never printed)."""
    return node_file(lab, machine, f"/run/zeta/creds/hub-{kind}").read_bytes()


def ask(lab: Lab, kind: str, raw: bytes) -> bytes:
    """One raw HTTP request to a hub; the whole answer."""
    with socket.create_connection((hub_address(lab), PORTS[kind]), timeout=10) as conn:
        conn.sendall(raw)
        conn.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def request(token_value: bytes | None, tenant: str, path: bytes = b"/v1/whoami") -> bytes:
    head = b"GET " + path + b" HTTP/1.1\r\nHost: hub\r\n"
    if token_value is not None:
        head += b"Authorization: Bearer " + token_value + b"\r\n"
    return head + b"X-Hero-Context: " + tenant.encode() + b"\r\n\r\n"


def status(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def identity(hcli: CredCli, name: str) -> str:
    rows = json.loads(hcli("tenant", "list", "--format", "json", check_rc=0).stdout)
    return next(str(r["identity"]) for r in rows if r["tenant"] == name)


def tokens_state(hcli: CredCli, name: str) -> dict[str, str]:
    rows = json.loads(hcli("hub", "tokens", "--tenant", name, "--format", "json", check_rc=0).stdout)
    return {str(r["token_id"]): str(r["state"]) for r in rows}


def proofs(result_stdout: str) -> dict[tuple[str, str], bool]:
    return {(c["service"], c["case"]): c["ok"] for c in json.loads(result_stdout)["checks"]}


def hub_findings(health_json: str) -> dict[tuple[str, str], tuple[str, str]]:
    hosts = json.loads(health_json)["hosts"]
    return {(h, f["check"]): (f["severity"], f["message"]) for h, v in hosts.items() for f in v["findings"]
            if f["check"].startswith("hub")}


def collect(lab: Lab, machine: str) -> None:
    for kind in KINDS:
        value = token(lab, machine, kind)
        assert value.startswith(b"ztk_") and len(value) == 4 + 12 + 1 + 38
        if value not in ISSUED:
            ISSUED.append(value)


# -- capacity, failed add, retry ------------------------------------------------------------------
def test_add_on_a_full_hub_host_is_refused_before_anything_is_created(hublab: Lab, hcli: CredCli,
                                                                     sampler: CmdlineSampler) -> None:
    inv = str(hublab.inventory)
    free = json.loads(hcli("hub", "capacity", "-i", inv, "--format", "json", check_rc=0).stdout)
    assert free["fits"] > 10 and free["hubs"][0]["free_disk"] > 0
    hublab.fill_disk(HUB, "/var/lib/zeta/hubs")
    try:
        full = json.loads(hcli("hub", "capacity", "-i", inv, "--format", "json", check_rc=0).stdout)
        assert full["fits"] == 0 and full["hubs"][0]["free_disk"] == 0, full
        refused = hcli("tenant", "add", "acme", "--machine", "lab-005", "-i", inv)
        assert refused.returncode == 2, refused
        assert "no room for one more tenant, nothing was created: lab-004 has 0B disk free" in refused.stderr
    finally:
        hublab.unfill_disk(HUB, "/var/lib/zeta/hubs")
    assert json.loads(hcli("tenant", "list", "--format", "json", check_rc=0).stdout) == []
    assert all(registry(hublab, kind) == [] for kind in KINDS)
    assert not (hcli.home / "creds").exists() or not list((hcli.home / "creds").glob("hub-*"))
    assert not hublab.node("lab-005").path("/etc/zeta/hubs.env").exists()


def test_failed_add_then_retry_succeeds_with_no_leftovers(hublab: Lab, hcli: CredCli) -> None:
    inv = str(hublab.inventory)
    hublab.freeze("lab-006")
    try:
        failed = hcli("tenant", "add", "beta", "--machine", "lab-006", "-i", inv, "--connect-timeout", "3")
    finally:
        hublab.thaw("lab-006")
    assert failed.returncode == 3, failed
    assert "delivery to lab-006 failed" in failed.stderr and "stays 'adding'" in failed.stderr
    ident = identity(hcli, "beta")
    first = {kind: [r[0] for r in registry(hublab, kind) if r[1] == ident] for kind in KINDS}
    assert all(len(ids) == 1 for ids in first.values()), first  # registered, never delivered
    retried = hcli("tenant", "add", "beta", "--machine", "lab-006", "-i", inv, "--format", "json")
    assert retried.returncode == 0, retried
    assert all(proofs(retried.stdout).values())
    for kind in KINDS:
        rows = [r for r in registry(hublab, kind) if r[1] == ident]
        assert len(rows) == 1 and rows[0][0] not in first[kind], (kind, rows, first)  # the leftover is gone
    assert identity(hcli, "beta") == ident  # the same machine keeps its identity
    collect(hublab, "lab-006")


# -- three tenants, one removed with the voice hub down ---------------------------------------------
def test_three_tenants_are_added_and_proven_from_their_machines(hublab: Lab, hcli: CredCli) -> None:
    inv = str(hublab.inventory)
    for name, machine in (("acme", "lab-005"), ("gamma", "lab-003")):
        added = hcli("tenant", "add", name, "--machine", machine, "-i", inv, "--format", "json", check_rc=0)
        checks = proofs(added.stdout)
        assert set(checks) == {(k, c) for k in KINDS for c in ("accept", "no-token", "wrong-token", "other-tenant",
                                                              "other-service")}
        assert all(checks.values()), checks
        for stage in ("adding on", "registering", "delivering", "verifying", "ready"):
            assert f"tenant {name}: {stage}" in added.stderr, (stage, added.stderr)
        collect(hublab, machine)
    env = hublab.node("lab-005").path("/etc/zeta/hubs.env").read_text()
    assert f"ZETA_TENANT={identity(hcli, 'acme')}\n" in env
    assert f"ZETA_HUB_VOICE_URLS=http://{hub_address(hublab)}:8702\n" in env
    assert oct(node_file(hublab, "lab-005", "/run/zeta/creds/hub-voice").stat().st_mode)[-3:] == "400"
    # each tenant's own token works for it alone, checked here without zetactl
    for name, machine in (("acme", "lab-005"), ("beta", "lab-006"), ("gamma", "lab-003")):
        for kind in KINDS:
            answer = ask(hublab, kind, request(token(hublab, machine, kind), identity(hcli, name)))
            assert status(answer) == 200 and identity(hcli, name).encode() in answer
    assert hcli("hub", "verify", "-i", inv, check_rc=0).stdout.count(" ok ") == 30
    # the delivery is a journaled playbook: run again, it changes nothing
    playbook = next(p for p in (hcli.home / "hubs/.playbooks").glob("deliver-*.yml") if "acme" in p.read_text())
    for _ in range(2):
        again = json.loads(hcli("deploy", str(playbook), "-i", inv, "--format", "json", check_rc=0).stdout)
        assert again["hosts"]["lab-005"]["changed"] == 0, again


def test_remove_with_the_voice_hub_down_stays_pending_until_reconcile(hublab: Lab, hcli: CredCli) -> None:
    inv = str(hublab.inventory)
    ident = identity(hcli, "beta")
    held = {kind: token(hublab, "lab-006", kind) for kind in KINDS}
    hublab.stop_hub(HUB, "voice")
    try:
        removed = hcli("tenant", "remove", "beta", "-i", inv)
        assert removed.returncode == 3, removed
        assert "PENDING: voice on lab-004: revocation of" in removed.stderr, removed.stderr
        assert "embedder on lab-004" in removed.stderr and "refused (revoked)" in removed.stderr
        # the embedder refuses it at once
        assert status(ask(hublab, "embedder", request(held["embedder"], ident))) == 401
        states = tokens_state(hcli, "beta")
        assert sorted(states.values()) == ["pending-revoke", "revoked"], states
        again = hcli("hub", "reconcile", "-i", inv)
        assert again.returncode == 3 and "voice on lab-004" in again.stderr, again
        swept = hcli("health", "-i", inv, "--format", "json")
        assert swept.returncode == 2, swept
        found = hub_findings(swept.stdout)
        assert found[(HUB, "hub_revocations")][0] == "CRITICAL" and "beta's voice token" in found[
            (HUB, "hub_revocations")][1]
        assert found[("lab-005", "hub_token:voice@lab-004")][0] == "CRITICAL"
        assert found[("lab-005", "hub_token:embedder@lab-004")][0] == "OK"
    finally:
        hublab.start_hubs(HUB, ["voice"])
    assert "pending-revoke" in tokens_state(hcli, "beta").values()  # not revoked until proven
    done = hcli("hub", "reconcile", "-i", inv, check_rc=0)
    assert "refused (revoked)" in done.stderr and "beta removed" in done.stderr
    assert set(tokens_state(hcli, "beta").values()) == {"revoked"}
    assert "nothing pending" in hcli("hub", "reconcile", "-i", inv, check_rc=0).stderr  # idempotent
    for kind in KINDS:
        assert status(ask(hublab, kind, request(held[kind], ident))) == 401
        assert not any(ident in row for row in registry(hublab, kind))  # every service kind, every record
    assert not hublab.node("lab-006").path("/etc/zeta/hubs.env").exists()
    assert not hublab.node("lab-006").path("/run/zeta/creds/hub-voice").exists()
    found = hub_findings(hcli("health", "-i", inv, "--format", "json").stdout)
    assert {k: v[0] for k, v in found.items() if k[1] != "hub_capacity"} == {
        (HUB, "hub_revocations"): "OK", **{(m, f"hub_token:{k}@{HUB}"): "OK" for m in ("lab-005", "lab-003")
                                           for k in KINDS}}
    assert found[(HUB, "hub_capacity")][0] == "OK"
    # the other two still work
    verified = hcli("hub", "verify", "-i", inv, "--format", "json", check_rc=0)
    assert {c["tenant"] for c in json.loads(verified.stdout)["checks"]} == {"acme", "gamma"}


# -- rotation --------------------------------------------------------------------------------------
def test_rotate_while_the_tenant_machine_is_down_revokes_nothing(hublab: Lab, hcli: CredCli) -> None:
    inv = str(hublab.inventory)
    ident = identity(hcli, "acme")
    old = {kind: token(hublab, "lab-005", kind) for kind in KINDS}
    old_ids = set(tokens_state(hcli, "acme"))
    hublab.freeze("lab-005")
    try:
        stuck = hcli("tenant", "rotate", "acme", "-i", inv, "--connect-timeout", "3")
    finally:
        hublab.thaw("lab-005")
    assert stuck.returncode == 3, stuck
    assert "nothing revoked, the old tokens keep working" in stuck.stderr
    states = tokens_state(hcli, "acme")
    assert len(states) == 4 and set(states.values()) == {"active"}, states  # old and new, none revoked
    for kind in KINDS:
        assert status(ask(hublab, kind, request(old[kind], ident))) == 200
        assert len([r for r in registry(hublab, kind) if r[1] == ident]) == 2  # the new one is never alone
    done = hcli("tenant", "rotate", "acme", "-i", inv, "--format", "json", check_rc=0)
    cases = proofs(done.stdout)
    assert cases[("embedder", "old-token")] and cases[("voice", "old-token")] and cases[("voice", "accept")]
    states = tokens_state(hcli, "acme")
    assert {states[i] for i in old_ids} == {"revoked"}
    assert {s for i, s in states.items() if i not in old_ids} == {"active"}
    for kind in KINDS:
        new = token(hublab, "lab-005", kind)
        assert new != old[kind]
        assert status(ask(hublab, kind, request(old[kind], ident))) == 401
        assert status(ask(hublab, kind, request(new, ident))) == 200
        assert len([r for r in registry(hublab, kind) if r[1] == ident]) == 1
    gens = hublab.node("lab-005").path("/run/zeta/creds/.gen/hub-voice.acme")
    assert len(list(gens.iterdir())) == 1  # the old generation retired from the tenant machine
    collect(hublab, "lab-005")


# -- the hub's refusals -----------------------------------------------------------------------------
def test_every_bad_input_gets_the_same_refusal_and_never_a_server_error(hublab: Lab, hcli: CredCli) -> None:
    ident = identity(hcli, "gamma")
    good = token(hublab, "lab-003", "embedder")
    voice = token(hublab, "lab-003", "voice")
    flipped = good[:-1] + (b"A" if good[-1:] != b"A" else b"B")
    body = good[4 + 12 + 1:-6]
    bad_check = good[:-6] + (b"000000" if good[-6:] != b"000000" else b"111111")
    cases = {
        "no header": request(None, ident),
        "empty bearer": b"GET /v1/whoami HTTP/1.1\r\nAuthorization: Bearer \r\nX-Hero-Context: " + ident.encode()
                        + b"\r\n\r\n",
        "wrong scheme": request(None, ident).replace(b"X-Hero", b"Authorization: Basic " + good + b"\r\nX-Hero"),
        "wrong checksum": request(bad_check, ident),
        "one character changed": request(flipped, ident),
        "truncated": request(good[:-3], ident),
        "secret only": request(body, ident),
        "1 MB token": request(good + b"A" * (1 << 20), ident),
        "NUL in token": request(good[:20] + b"\0" + good[21:], ident),
        "CRLF in token": request(good[:20] + b"\r\n" + good[20:], ident),
        "wrong service": request(voice, ident),
        "other tenant": request(good, "acme@00000000"),
        "no tenant": b"GET /v1/whoami HTTP/1.1\r\nAuthorization: Bearer " + good + b"\r\n\r\n",
        "two tokens": request(good, ident).replace(b"X-Hero", b"Authorization: Bearer " + good + b"\r\nX-Hero"),
        "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\xff" * 64,
    }
    refusal = ask(hublab, "embedder", cases["no header"])
    assert refusal.startswith(b"HTTP/1.1 401 Unauthorized\r\n"), refusal
    for name, raw in cases.items():
        assert ask(hublab, "embedder", raw) == refusal, name  # byte for byte the same answer
    assert status(ask(hublab, "embedder", request(good, ident))) == 200  # control: the valid token works
    assert status(ask(hublab, "embedder", request(good, ident, b"/healthz"))) == 200
    assert all(h.alive() for h in hublab.hubs())


# -- concurrency ------------------------------------------------------------------------------------
def test_concurrent_adds_and_removes_serialise_on_the_registry(hublab: Lab, hcli: CredCli) -> None:
    inv = str(hublab.inventory)
    names = {"delta": "lab-001", "epsilon": "lab-002", "zeta": "lab-004"}

    def start(*args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-m", "zetactl", *args, "-i", inv], env=hcli.env, cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    procs = [start("tenant", "add", name, "--machine", machine) for name, machine in names.items()]
    for proc in procs:
        out, errors = proc.communicate(timeout=300)
        hcli.outputs += [out.decode(), errors.decode()]
        assert proc.returncode == 0, errors.decode()
    for machine in names.values():
        collect(hublab, machine)
    idents = {identity(hcli, n) for n in names}
    for kind in KINDS:
        tenants = [r[1] for r in registry(hublab, kind)]
        assert idents <= set(tenants) and len(tenants) == len(set(tenants)) == 5, tenants  # no lost update
    procs = [start("tenant", "remove", name) for name in names]
    for proc in procs:
        out, errors = proc.communicate(timeout=300)
        hcli.outputs += [out.decode(), errors.decode()]
        assert proc.returncode == 0, errors.decode()
    for kind in KINDS:
        assert {r[1] for r in registry(hublab, kind)} == {identity(hcli, "acme"), identity(hcli, "gamma")}
        assert not list(hublab.node(HUB).path(f"/var/lib/zeta/hubs/{kind}").glob(".registry.*"))  # no temp left


# -- retiring a tenant machine ---------------------------------------------------------------------
def test_retiring_a_tenant_machine_revokes_its_tenant_on_every_hub(hublab: Lab, hcli: CredCli) -> None:
    inv = str(hublab.inventory)
    ident = identity(hcli, "acme")
    held = {kind: token(hublab, "lab-005", kind) for kind in KINDS}
    retired = hcli("node", "retire", "lab-005", "-i", inv, check_rc=0)
    assert "lab-005: tenant acme: acme removed: its tokens are refused by every hub" in retired.stderr, retired
    assert "lab-005: removed from" in retired.stderr
    assert set(tokens_state(hcli, "acme").values()) == {"revoked"}
    for kind in KINDS:
        assert status(ask(hublab, kind, request(held[kind], ident))) == 401
        assert not any(ident in row for row in registry(hublab, kind))
    assert "lab-005" not in hublab.inventory.read_text()


# -- no token anywhere ------------------------------------------------------------------------------
def test_no_token_appears_in_any_output_log_journal_or_command_line(hublab: Lab, hcli: CredCli, work: Path,
                                                                     sampler: CmdlineSampler) -> None:
    for name in ("acme", "gamma"):
        hcli("tenant", "list", "--format", "json", check_rc=0)
        hcli("hub", "tokens", "--tenant", name, check_rc=0)
    for run_id in hcli.run_ids():
        hcli("runs", "show", run_id, "--events", "--format", "json")
    assert len(ISSUED) >= 12, len(ISSUED)
    # positive controls: the tokens are where they belong, the logs and the sampler captured commands
    assert token(hublab, "lab-003", "voice") in ISSUED
    log_text = (work / "debug.log").read_text()
    commands = [line.split("  Command: ", 1)[1] for line in log_text.splitlines() if "  Command: " in line]
    assert any(CHANNEL.text.startswith(c) for c in commands) and any("flock" in c for c in sampler.seen)
    needles = list(ISSUED)
    texts = [t.decode() for t in ISSUED]
    hits = [f"output #{i}" for i, out in enumerate(hcli.outputs) for t in texts if t in out]
    hits += [f"command line (controller log): {c}" for c in commands for t in texts if t in c]
    hits += [f"command line (node): {c}" for c in sampler.seen for t in texts if t in c]
    hits += _hits(work, needles)  # controller records, playbooks, journals, the debug log
    for node in hublab.nodes():
        node_dir = hublab.dir / "nodes" / node.name
        hits += _hits(node_dir, needles)  # sshd and hub logs, /etc /var /nix of the node (registries: hashes)
        hits += _hits(node.path("/run"), needles, skip=(node.path("/run/zeta/creds/.gen"), node.path("/run/zeta-lab")))
        hits += _hits(node.path("/tmp"), needles)
    assert not hits, hits
    assert re.search(r"[0-9a-f]{64}", registry(hublab, "voice")[0][3])  # what the hub keeps: a hash
