"""The CLI without a lab: plan, inventory, usage errors and their exit codes."""

from __future__ import annotations

from tests.conftest import ROOT, Cli

INVENTORY = str(ROOT / "inventory" / "hosts.yml")
SITE = str(ROOT / "playbooks" / "site.yml")


def test_plan_renders_every_host_without_connecting(cli: Cli) -> None:
    table = cli("plan", SITE, "-i", INVENTORY, check_rc=0)
    assert "no host was contacted" in table.stdout
    assert "cp1" in table.stdout and "tenant-a" in table.stdout
    doc = cli("plan", SITE, "-i", INVENTORY, "--limit", "control_plane", "--format", "json", check_rc=0).json()
    assert sorted(doc["hosts"]) == ["cp1", "cp2", "cp3"]
    agents = [s for s in doc["hosts"]["cp1"] if s["kind"] == "systemd" and "zeta-" in (s["target"] or "")]
    assert [s["target"] for s in agents] == ["zeta-otto.service", "zeta-lior.service", "zeta-vera.service"]
    assert cli.run_ids() == []  # planning starts no run


def test_inventory_show_list_and_graph(cli: Cli) -> None:
    shown = cli("inventory", "show", "gpu1", "-i", INVENTORY, "--format", "json", check_rc=0).json()
    assert shown["address"] == "gpu1.zeta.internal" and shown["vars"]["zeta_role"] == "worker-gpu"
    assert shown["declared_at"].endswith("hosts.yml:19")
    listed = cli("inventory", "list", "-i", INVENTORY, "--limit", "admin,tenants", check_rc=0).stdout
    assert "admin1" in listed and "tenant-a" in listed and "cp1" not in listed
    assert "--@worker_gpu:" in cli("inventory", "graph", "-i", INVENTORY, check_rc=0).stdout
    assert cli("inventory", "show", "nosuch", "-i", INVENTORY).returncode == 4


def test_usage_and_input_errors_exit_4(cli: Cli) -> None:
    assert cli("deploy", SITE, "--no-such-flag").returncode == 4
    assert cli("deploy", SITE, "-i", INVENTORY, "--forks", "0").returncode == 4
    assert cli("deploy", SITE, "-i", INVENTORY, "--serial", "lots").returncode == 4
    assert cli("deploy", SITE, "-i", INVENTORY, "-e", "not a var").returncode == 4
    missing = cli("deploy", "playbooks/nope.yml", "-i", INVENTORY)
    assert missing.returncode == 4 and "file not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert cli.run_ids() == []


def test_help_has_an_example_for_every_command(cli: Cli) -> None:
    for command in (["deploy"], ["plan"], ["run"], ["inventory", "list"], ["inventory", "show"],
                    ["inventory", "graph"], ["runs", "list"], ["runs", "show"], ["lab", "up"], ["lab", "down"],
                    ["lab", "status"], ["node", "trust"]):
        assert "Example" in cli(*command, "--help", check_rc=0).stdout, command
