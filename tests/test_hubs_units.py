"""Hubs without a lab: the inventory's hub declarations, the revocation plan (exhaustive over every service
kind), the file registry's change script run for real with sh, and the tenant-side proof's parsing."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.nodesh import run_local
from zetactl.errors import BadInput, ExitCode
from zetactl.hubs import probe, tokens
from zetactl.hubs.model import HubService, endpoints_text, hub_services, parse_size, service_kinds
from zetactl.hubs.records import Tenant, Token
from zetactl.hubs.registry import Entry, FileRegistry, parse
from zetactl.hubs.tenants import Hubs, Report, revocation_plan
from zetactl.inventory import load_inventory
from zetactl.remote import Answer, BadAnswer, Records

INVENTORY = """\
all:
  vars: {zeta_known_hosts: known_hosts}
  children:
    admin:
      hosts:
        admin1:
          ansible_host: 127.0.0.1
          zeta_hubs:
            - {name: embedder, port: 8701, tenant_disk: 2G, tenant_memory: 1G}
            - {name: voice, port: 8702}
            - {name: ocr, port: 8703, url: "http://ocr.internal:80/api"}
        admin2:
          ansible_host: 127.0.0.2
          zeta_hubs: [{name: embedder, port: 8701}]
    tenants:
      hosts:
        t1: {ansible_host: 127.0.0.3}
"""


def hubs_from(tmp_path: Path, text: str = INVENTORY) -> Hubs:
    path = tmp_path / "hosts.yml"
    path.write_text(text)
    inv = load_inventory(path)
    return Hubs(inv, hub_services(inv))


def tenant_with(*kinds: str) -> Tenant:
    made = [Token(kind, tokens.mint().token_id, "0" * 64, 0, 1, {"admin1": "active"}) for kind in kinds]
    return Tenant("acme", "t1", "acme@0123abcd", 0, "ready", made)


# -- the inventory ---------------------------------------------------------------------------------
def test_hub_services_from_the_inventory(tmp_path: Path) -> None:
    hubs = hubs_from(tmp_path)
    assert [(s.host, s.name, s.url) for s in hubs.services] == [
        ("admin1", "embedder", "http://127.0.0.1:8701"), ("admin1", "voice", "http://127.0.0.1:8702"),
        ("admin1", "ocr", "http://ocr.internal:80/api"), ("admin2", "embedder", "http://127.0.0.2:8701")]
    assert hubs.services[0].tenant_disk == 2 << 30 and hubs.services[0].tenant_memory == 1 << 30
    assert service_kinds(hubs.services) == ["embedder", "ocr", "voice"]
    text = endpoints_text("acme@0123abcd", hubs.services)
    assert "ZETA_HUB_EMBEDDER_URLS=http://127.0.0.1:8701,http://127.0.0.2:8701\n" in text
    assert "ZETA_HUB_OCR_TOKEN_FILE=/run/zeta/creds/hub-ocr\n" in text and "ztk_" not in text


@pytest.mark.parametrize(("entry", "message"), [
    ("{name: embedder, port: 0}", "port must be a number from 1 to 65535"),
    ("{name: Embedder, port: 1}", "name must be lowercase"),
    ("{name: e, port: 1, colour: red}", "unknown key(s) colour"),
    ("{name: e, port: 1, tenant_disk: lots}", "expected a size like 512M"),
    ("{name: e, port: 1, url: 'ftp://x'}", "url must be http(s)"),
    ("embedder", "expected a mapping"),
])
def test_bad_hub_declarations_name_the_host(tmp_path: Path, entry: str, message: str) -> None:
    text = INVENTORY.replace("zeta_hubs: [{name: embedder, port: 8701}]", f"zeta_hubs: [{entry}]")
    with pytest.raises(BadInput) as caught:
        hubs_from(tmp_path, text)
    assert message in str(caught.value) and "admin2" in str(caught.value)


def test_a_service_declared_twice_on_one_host_is_refused(tmp_path: Path) -> None:
    text = INVENTORY.replace("zeta_hubs: [{name: embedder, port: 8701}]",
                             "zeta_hubs: [{name: embedder, port: 8701}, {name: embedder, port: 8702}]")
    with pytest.raises(BadInput, match="declared twice on admin2"):
        hubs_from(tmp_path, text)


def test_sizes() -> None:
    assert [parse_size(v, "x") for v in ("512M", "2G", "1.5K", 7, "3GiB")] == [512 << 20, 2 << 30, 1536, 7, 3 << 30]
    with pytest.raises(BadInput):
        parse_size("-1G", "x")


# -- revocation is exhaustive ----------------------------------------------------------------------
def test_removal_revokes_every_service_kind_on_every_hub_whatever_the_records_say(tmp_path: Path) -> None:
    hubs = hubs_from(tmp_path)
    tenant = tenant_with("embedder")  # the records know one token only
    for token in tenant.tokens:
        token.retired = True
    plan = revocation_plan(hubs, tenant, everything=True)
    covered = {(host, kind) for host, changes in plan.items() for kind, _ids, idents in changes
               if idents == [tenant.identity]}
    every = {(s.host, s.name) for s in hubs.services}
    assert covered == every, f"service kinds with no revoke path: {sorted(every - covered)}"
    assert [ids for kind, ids, _ in plan["admin1"] if kind == "embedder"] == [[tenant.tokens[0].token_id]]


def test_rotation_revokes_only_the_retired_tokens(tmp_path: Path) -> None:
    hubs = hubs_from(tmp_path)
    tenant = tenant_with("embedder", "voice", "voice")
    tenant.tokens[1].retired = True
    plan = revocation_plan(hubs, tenant, everything=False)
    assert plan == {"admin1": [("voice", [tenant.tokens[1].token_id], [])]}


# -- the file registry's change, run for real --------------------------------------------------------
def entry(tenant: str, service: str = "embedder") -> Entry:
    minted = tokens.mint()
    return Entry(minted.token_id, tenant, service, minted.hash)


def change(root: Path, service: str, **kwargs: object) -> Answer:
    script = FileRegistry(str(root)).change_script(service, list(kwargs.get("add", [])),  # type: ignore[call-overload]
                                                   set(kwargs.get("drop_ids", ())),  # type: ignore[call-overload]
                                                   set(kwargs.get("drop_tenants", ())))  # type: ignore[call-overload]
    return run_local(script)


@pytest.mark.skipif(not shutil.which("flock"), reason="needs flock(1)")
def test_registry_changes_are_atomic_and_drop_by_id_or_identity(tmp_path: Path) -> None:
    a1, a2, b1 = entry("a@00000001"), entry("a@00000001", "embedder"), entry("b@00000002")
    done = change(tmp_path, "embedder", add=[a1, b1])
    assert done.rc == 0, done.err
    assert sorted(parse(done.records().text("registry"))) == sorted([a1, b1])
    registry = tmp_path / "embedder" / "registry"
    assert oct(registry.stat().st_mode)[-3:] == "600" and oct((tmp_path / "embedder").stat().st_mode)[-3:] == "700"
    # a retried add of tenant a: every leftover of its identity goes in the same change
    done = change(tmp_path, "embedder", add=[a2], drop_tenants={"a@00000001"})
    assert sorted(parse(registry.read_text())) == sorted([a2, b1])
    done = change(tmp_path, "embedder", drop_ids={b1.token_id})
    assert parse(registry.read_text()) == [a2]
    assert registry.read_text().startswith("# zeta hub registry v1 (embedder)")
    assert not list((tmp_path / "embedder").glob(".registry.*"))


@pytest.mark.skipif(not shutil.which("flock"), reason="needs flock(1)")
def test_a_failed_change_leaves_the_registry_as_it_was(tmp_path: Path) -> None:
    kept = entry("a@00000001")
    assert change(tmp_path, "voice", add=[entry("a@00000001", "voice")]).rc == 0
    registry = tmp_path / "voice" / "registry"
    before = registry.read_bytes()
    registry.unlink()
    registry.mkdir()  # unreadable as a file: grep fails with exit 2
    failed = change(tmp_path, "voice", add=[Entry(kept.token_id, kept.tenant, "voice", kept.hash)])
    assert failed.rc == 1 and "cannot read" in failed.err
    assert registry.is_dir() and not list((tmp_path / "voice").glob(".registry.*"))
    assert before.startswith(b"# zeta hub registry")


def test_the_change_script_refuses_bad_entries() -> None:
    backend = FileRegistry("/r")
    with pytest.raises(ValueError):
        backend.change_script("embedder", [Entry("short", "a@00000001", "embedder", "0" * 64)], set(), set())
    with pytest.raises(ValueError):
        backend.change_script("embedder", [entry("a@00000001", "voice")], set(), set())
    with pytest.raises(ValueError):
        backend.change_script("embedder", [], set(), {"a b@00000001"})
    with pytest.raises(ValueError):  # a line break would add a record
        backend.change_script("embedder", [Entry(entry("x@00000001").token_id, "a@00000001\nx", "embedder",
                                                 "0" * 64)], set(), set())


# -- the tenant-side proof --------------------------------------------------------------------------
def test_checks_cover_every_case_and_are_parsed_strictly() -> None:
    hubs = [HubService("admin1", "embedder", 8701, "http://h:8701", 1, 1),
            HubService("admin1", "voice", 8702, "http://h:8702", 1, 1)]
    checks = probe.tenant_checks("acme@0123abcd", hubs, other_identity="beta@00000000")
    assert [(c.hub.name, c.case) for c in checks] == [
        (k, c) for k in ("embedder", "voice")
        for c in ("accept", "no-token", "wrong-token", "other-tenant", "other-service")]
    script = probe.script(checks).text
    assert "/run/zeta/creds/hub-embedder" in script and "Authorization: Bearer" in script

    def answers(*replies: tuple[str, str]) -> Records:
        return Records({tag: value.encode() for tag, value in replies})

    results = probe.parse(answers(("hub.0", "200"), ("hub.0.served", "acme@0123abcd"), ("hub.1", "401"),
                                  ("hub.2", "401"), ("hub.3", "200"), ("hub.3.served", "beta@00000000"),
                                  ("hub.4", "500"), ("hub.5", "000"), ("hub.6", "401"), ("hub.7", "401"),
                                  ("hub.8", "401")), checks)
    assert [r.ok for r in results] == [True, True, True, False, False, False, True, True, True, False]
    assert results[3].verdict() == "NOT REFUSED (200)" and results[4].verdict().startswith("server error")
    assert not results[5].answered and results[9].code == "000"  # a missing line is no answer
    assert probe.parse(answers(("hub.0", "200"), ("hub.0.served", "someone-else")), checks[:1])[0].verdict() == \
        "accepted as 'someone-else', not the tenant"
    assert all(r.code == "no-curl" and not r.ok for r in probe.parse(answers(("hub.curl", "missing")), checks))
    with pytest.raises(BadAnswer):  # a hub's answer is never read as anything but a status
        probe.parse(answers(("hub.0", "200 forged")), checks[:1])


def test_report_exit_codes() -> None:
    assert Report().exit_code == ExitCode.OK
    assert Report(pending=["voice on admin1"]).exit_code == ExitCode.UNREACHABLE
    assert Report(pending=["x"], failed=["y"]).exit_code == ExitCode.FAILED


def test_token_states_across_hubs() -> None:
    token = Token("voice", "A" * 12, "0" * 64, 0, 1, {"h1": "active", "h2": "registering"})
    assert token.state == "registering" and token.pending() == [("h2", "register")]
    token.hubs["h2"] = "active"
    token.retired = True
    assert token.pending() == [("h1", "revoke"), ("h2", "revoke")]
    token.hubs = {"h1": "revoked", "h2": "revoking"}
    assert token.state == "revoking"
    token.hubs["h2"] = "revoked"
    assert token.state == "revoked" and token.pending() == []


# -- bad input through the CLI: exit 4, nothing touched -------------------------------------------
def test_bad_input_is_refused_before_any_connection(tmp_path: Path) -> None:
    from tests.conftest import Cli

    cli = Cli(tmp_path / "home")
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(INVENTORY)
    no_hubs = tmp_path / "nohubs.yml"
    no_hubs.write_text("all:\n  hosts:\n    t1: {ansible_host: 127.0.0.3}\n")
    cases = [
        (["tenant", "add", "Bad Name", "--machine", "t1", "-i", str(inventory)], "tenant name 'Bad Name'"),
        (["tenant", "add", "acme", "--machine", "nosuch", "-i", str(inventory)], "tenant machine 'nosuch' is not in"),
        (["tenant", "add", "acme", "-i", str(inventory)], "no host 'acme' in"),
        (["tenant", "add", "acme", "--machine", "t1", "-i", str(no_hubs)], "no hub host"),
        (["tenant", "remove", "ghost", "-i", str(inventory)], "no tenant named 'ghost'"),
        (["hub", "tokens", "--tenant", "ghost"], "no tenant named 'ghost'"),
        (["hub", "verify", "-i", str(no_hubs)], "no hub host"),
    ]
    for args, message in cases:
        result = cli(*args)
        assert result.returncode == ExitCode.BAD_INPUT, result
        assert message in result.stderr, result
    assert not (tmp_path / "home" / "hubs" / "tenants").exists() or not list((tmp_path / "home/hubs/tenants").iterdir())
