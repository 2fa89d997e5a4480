"""NixOS rollouts against the lab: module files, switch with confirm-or-rollback, waves and gates, facts, agents.

The lab's nodes have real generations on their own filesystems (see docs/lab.md); every playbook
that should settle runs twice: the first run changes, the second changes nothing.
"""

from __future__ import annotations

import http.server
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Cli, _lab, needs_lab, totals, write_playbook
from zetactl.lab import Lab

pytestmark = [needs_lab]
PROFILE = "/nix/var/nix/profiles/system"


@pytest.fixture(scope="module")
def nixlab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Six nodes: lab-001..003 control_plane, lab-004 admin, lab-005 worker_gpu, lab-006 tenants."""
    yield from _lab(tmp_path_factory.mktemp("nixlab"), 6, subnet=70)


def generation(lab: Lab, node: str) -> int:
    link = os.readlink(lab.node(node).path(PROFILE))
    return int(link.removeprefix("system-").removesuffix("-link"))


def deploy(cli: Cli, lab: Lab, playbook: Path | str, *args: str, rc: int | None = 0) -> dict[str, Any]:
    result = cli("deploy", str(playbook), "-i", str(lab.inventory), "--format", "json", *args, timeout=300,
                 check_rc=rc)
    document: dict[str, Any] = result.json()
    return document


def statuses(document: dict[str, Any]) -> dict[str, str]:
    return {name: host["status"] for name, host in document["hosts"].items()}


def run_on(cli: Cli, lab: Lab, node: str, command: str) -> str:
    result = cli("run", command, "-i", str(lab.inventory), "--limit", node, "--format", "json", check_rc=0)
    return str(result.json()["hosts"][node]["stdout"])


CLEANUP = """\
hosts: all
steps:
  - nixos_module: {{dest: /etc/nixos/zeta/{name}.nix, state: absent}}
  - nixos_rebuild: {{confirm_timeout: 20}}
"""


def cleanup(cli: Cli, lab: Lab, tmp_path: Path, name: str) -> None:
    """Remove a test's module and switch back: twice, the second run changes nothing."""
    play = write_playbook(tmp_path, CLEANUP.format(name=name), "cleanup.yml")
    deploy(cli, lab, play, "--max-fail", "100%")
    assert totals(deploy(cli, lab, play), "changed") == 0


def test_role_playbooks_switch_once_then_settle(nixlab: Lab, cli: Cli) -> None:
    before = {n.name: generation(nixlab, n.name) for n in nixlab.nodes()}
    for playbook, hosts in (("control-plane.yml", ["lab-001", "lab-002", "lab-003"]), ("admin.yml", ["lab-004"]),
                            ("worker-gpu.yml", ["lab-005"]), ("tenant.yml", ["lab-006"])):
        first = deploy(cli, nixlab, ROOT / "playbooks" / playbook)
        assert statuses(first) == dict.fromkeys(hosts, "changed"), first
        for name in hosts:
            switch = first["hosts"][name]["steps"][-1]
            assert switch["kind"] == "nixos_rebuild" and switch["state"] == "done", switch
            assert "switched to generation" in switch["summary"], switch
            if playbook == "control-plane.yml":  # gated waves: every host ran the gate
                assert first["hosts"][name]["gate"] == "passed"
        second = deploy(cli, nixlab, ROOT / "playbooks" / playbook)
        assert totals(second, "changed") == 0 and set(statuses(second).values()) == {"ok"}, second
    after = {n.name: generation(nixlab, n.name) for n in nixlab.nodes()}
    assert all(after[name] == before[name] + 1 for name in after), (before, after)
    node = nixlab.node("lab-001")
    assert 'role = "server"' in node.path("/etc/nixos/zeta/k3s.nix").read_text()
    assert os.readlink(node.path("/run/current-system")) == \
        os.readlink(node.path(f"/nix/var/nix/profiles/system-{after['lab-001']}-link"))
    assert run_on(cli, nixlab, "lab-004", "systemctl is-active zeta-hub-embedder zeta-hub-voice").split() == \
        ["active", "active"]
    assert run_on(cli, nixlab, "lab-006", "systemctl is-active zeta-tenant-apps").strip() == "active"
    # worker-gpu.yml wrote a file from the node's facts
    assert node.path("/etc/nixos").is_dir()
    assert nixlab.node("lab-005").path("/etc/zeta/reboot-needed").read_text() == "False\n"


def test_agents_status_flags_a_control_plane_node_with_two_agents(nixlab: Lab, cli: Cli) -> None:
    inventory = str(nixlab.inventory)
    healthy = cli("agents", "status", "-i", inventory, "--format", "json", check_rc=0).json()
    assert healthy["hosts"]["lab-002"]["active"] >= 3 and not healthy["hosts"]["lab-002"]["below_floor"]
    run_on(cli, nixlab, "lab-002", "systemctl stop zeta-vera")
    try:
        flagged = cli("agents", "status", "-i", inventory, "--format", "json", check_rc=2).json()
        assert flagged["hosts"]["lab-002"]["below_floor"] is True
        assert flagged["hosts"]["lab-002"]["agents"]["vera"] == "inactive"
        assert [h for h, v in flagged["hosts"].items() if v["below_floor"]] == ["lab-002"]
        table = cli("agents", "status", "-i", inventory, "--limit", "control_plane", check_rc=2)
        assert "BELOW FLOOR: 2 active < 3" in table.stdout
    finally:
        run_on(cli, nixlab, "lab-002", "systemctl start zeta-vera")
    cli("agents", "status", "-i", inventory, check_rc=0)


BREAK = """\
hosts: control_plane
serial: 2
steps:
  - name: probe module
    nixos_module:
      dest: /etc/nixos/zeta/zz-net.nix
      content: |
        {{% if inventory_hostname == 'lab-002' %}}# zeta-lab: break-network{{% endif %}}
        {{ config, ... }}: {{ networking.firewall.enable = true; }}
  - name: switch
    nixos_rebuild: {{confirm_timeout: {confirm}}}
"""


def test_switch_that_breaks_networking_rolls_back_and_stops_the_rollout(nixlab: Lab, cli: Cli,
                                                                         tmp_path: Path) -> None:
    play = write_playbook(tmp_path, BREAK.format(confirm=8))
    before = {name: generation(nixlab, name) for name in ("lab-001", "lab-002", "lab-003")}
    started = time.monotonic()
    document = deploy(cli, nixlab, play, rc=2)
    elapsed = time.monotonic() - started
    assert statuses(document) == {"lab-001": "changed", "lab-002": "rolled-back", "lab-003": "not-run"}, document
    broken = document["hosts"]["lab-002"]
    assert "no confirmation within 8s" in broken["error"] and "back on generation" in broken["error"], broken
    assert broken["steps"][-1]["status"] == "rolled-back"
    assert "after wave 1" in document["hosts"]["lab-003"]["error"]  # lab-001 and lab-002 were wave 1
    assert elapsed < 8 + 60, elapsed  # the rollback came from the node's own timer, not a hung controller
    # the node rolled itself back: previous generation active, reachable again, the rollback recorded
    assert generation(nixlab, "lab-002") == before["lab-002"]
    assert generation(nixlab, "lab-001") == before["lab-001"] + 1
    assert generation(nixlab, "lab-003") == before["lab-003"]  # untouched
    record = run_on(cli, nixlab, "lab-002", "cat /var/lib/zeta/state/nixos-rollback")
    assert "verdict timeout" in record
    events = cli.journal(document["run_id"])
    assert any(e.get("event") == "switch-started" and e.get("host") == "lab-002" for e in events)
    cleanup(cli, nixlab, tmp_path, "zz-net")


FAILING_UNIT = """\
hosts: control_plane
serial: 1
gate:
  - unit: zeta-broken.service
    timeout: 3
steps:
  - nixos_module:
      dest: /etc/nixos/zeta/zz-unit.nix
      content: |
        { config, ... }: {
          systemd.services.zeta-broken = {
            wantedBy = [ "multi-user.target" ];
            serviceConfig.ExecStart = "/bin/false";
          };
        }
  - nixos_rebuild: {confirm_timeout: 20}
"""


def test_failing_unit_is_reported_and_the_gate_stops_the_next_wave(nixlab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, FAILING_UNIT)
    document = deploy(cli, nixlab, play, rc=2)
    assert statuses(document) == {"lab-001": "failed-units", "lab-002": "not-run", "lab-003": "not-run"}, document
    first = document["hosts"]["lab-001"]
    assert "zeta-broken.service" in first["error"] and "exit 4" in first["error"], first
    assert first["gate"].startswith("unit zeta-broken.service"), first
    assert "the gate failed after wave 1" in document["hosts"]["lab-002"]["error"]
    assert not nixlab.node("lab-002").path("/etc/nixos/zeta/zz-unit.nix").exists()
    cleanup(cli, nixlab, tmp_path, "zz-unit")


MODULE = """\
hosts: "{hosts}"
steps:
  - nixos_module:
      dest: /etc/nixos/zeta/zz-{name}.nix
      content: |
        {{ config, ... }}: {{ environment.etc."zeta-{name}".text = "{{{{ inventory_hostname }}}}"; }}
  - nixos_rebuild: {{confirm_timeout: 20}}
"""


def test_a_second_switch_in_flight_is_refused(nixlab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, MODULE.format(hosts="lab-003", name="inflight"))
    run_on(cli, nixlab, "lab-003", "systemd-run --unit=nixos-rebuild-switch-to-configuration --quiet sleep 5")
    refused = deploy(cli, nixlab, play, rc=2)
    host = refused["hosts"]["lab-003"]
    assert host["status"] == "failed" and "another switch is in flight" in host["error"], host
    assert "nixos-rebuild-switch-to-configuration" in host["error"]
    deadline = time.monotonic() + 30
    while run_on(cli, nixlab, "lab-003",
                             "systemctl is-active nixos-rebuild-switch-to-configuration; :").strip() == "active":
        assert time.monotonic() < deadline
        time.sleep(0.5)
    assert statuses(deploy(cli, nixlab, play)) == {"lab-003": "changed"}
    assert statuses(deploy(cli, nixlab, play)) == {"lab-003": "ok"}
    cleanup(cli, nixlab, tmp_path, "zz-inflight")


def test_check_mode_reports_the_switch_and_changes_nothing(nixlab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, MODULE.format(hosts="lab-004", name="check"))
    before = generation(nixlab, "lab-004")
    checked = deploy(cli, nixlab, play, "--check")
    assert checked["hosts"]["lab-004"]["changed"] == 2, checked
    summary = checked["hosts"]["lab-004"]["steps"][1]["summary"]
    assert "nixos_rebuild switch" in summary and "/etc/nixos/zeta/zz-check.nix would change first" in summary, summary
    assert generation(nixlab, "lab-004") == before
    assert not nixlab.node("lab-004").path("/etc/nixos/zeta/zz-check.nix").exists()


FACTS = """\
hosts: worker_gpu:tenants
vars:
  described: "generation {{ facts.generation }} of {{ facts.nixos_release }}"
steps:
  - directory: {path: /etc/zeta-facts}
  - name: facts in content
    file:
      path: /etc/zeta-facts/system
      content: "{{ described }} {{ facts.current_system }} failed={{ facts.failed_units | length }}\\n"
  - name: "facts in when (false: no reboot pending)"
    file: {path: /etc/zeta-facts/reboot, content: "reboot\\n"}
    when: facts.reboot_needed
  - name: a template reading facts
    template: {src: facts.j2, dest: /etc/zeta-facts/from-template}
"""


def test_facts_drive_when_and_templates(nixlab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, FACTS)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "facts.j2").write_text("{{ facts.hostname }} boots {{ facts.booted_system }}\n")
    planned = cli("plan", str(play), "-i", str(nixlab.inventory), "--format", "json", check_rc=0).json()
    assert planned["hosts"]["lab-005"][1]["needs_facts"] is True
    first = deploy(cli, nixlab, play)
    assert statuses(first) == {"lab-005": "changed", "lab-006": "changed"}
    node = nixlab.node("lab-005")
    text = node.path("/etc/zeta-facts/system").read_text()
    current = os.readlink(node.path("/run/current-system"))
    assert text == f"generation {generation(nixlab, 'lab-005')} of 25.05 {current} failed=0\n", text
    assert not node.path("/etc/zeta-facts/reboot").exists()
    assert node.path("/etc/zeta-facts/from-template").read_text().startswith("lab-005 boots /nix/store/")
    skipped = [s for s in first["hosts"]["lab-005"]["steps"] if s["state"] == "skipped"]
    assert [s["name"] for s in skipped] == ["facts in when (false: no reboot pending)"]
    assert totals(deploy(cli, nixlab, play), "changed") == 0


class _Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/healthz" else 503)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


GATED = """\
hosts: tenants
gate:
  - http: "http://127.0.0.1:{port}{path}"
    timeout: 3
  - command: "test -f /etc/zeta-gated/ok"
    timeout: 3
steps:
  - directory: {{path: /etc/zeta-gated}}
  - file: {{path: /etc/zeta-gated/ok, content: "ok\\n"}}
"""


def test_http_and_command_gates_pass_or_mark_the_host_unhealthy(nixlab: Lab, cli: Cli, tmp_path: Path) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        good = write_playbook(tmp_path, GATED.format(port=port, path="/healthz"), "good.yml")
        first = deploy(cli, nixlab, good)
        assert first["hosts"]["lab-006"]["gate"] == "passed" and first["hosts"]["lab-006"]["status"] == "changed"
        second = deploy(cli, nixlab, good)
        assert totals(second, "changed") == 0 and second["hosts"]["lab-006"]["gate"] == "passed"
        bad = write_playbook(tmp_path, GATED.format(port=port, path="/broken"), "bad.yml")
        unhealthy = deploy(cli, nixlab, bad, rc=2)["hosts"]["lab-006"]
        assert unhealthy["status"] == "unhealthy" and "answered 503" in unhealthy["gate"], unhealthy
    finally:
        server.shutdown()
        server.server_close()
    with socket.socket() as probe:  # nothing listens on a port just released: no answer at all
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    dead = write_playbook(tmp_path, GATED.format(port=closed, path="/healthz"), "dead.yml")
    host = deploy(cli, nixlab, dead, rc=2)["hosts"]["lab-006"]
    assert host["status"] == "unhealthy" and "no answer" in host["gate"], host
