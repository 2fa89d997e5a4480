"""deploy against real sshd lab nodes: every playbook runs twice (changes, then none)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import ROOT, Cli, needs_lab, totals, write_playbook
from zetactl.lab import Lab

pytestmark = [needs_lab]

FILES_PLAYBOOK = """\
hosts: all
vars: {tdir: /etc/t-idem}
steps:
  - name: dir
    directory: {path: "{{ tdir }}", mode: "0750"}
  - name: conf
    file: {path: "{{ tdir }}/app.conf", content: "name={{ inventory_hostname }}\\n", mode: "0640"}
    notify: reload app
  - name: template
    template: {src: app.j2, dest: "{{ tdir }}/app.ini"}
  - name: line
    line_in_file: {path: "{{ tdir }}/allow", line: "allow 10.0.0.0/8", create: true}
  - name: link
    symlink: {path: "{{ tdir }}/current", target: "{{ tdir }}/app.conf"}
  - name: once
    command: {cmd: "date +%s%N > {{ tdir }}/stamp", creates: "{{ tdir }}/stamp"}
  - name: sshd up
    systemd: {unit: sshd, state: started, enabled: true}
handlers:
  - name: reload app
    command: {cmd: "echo reloaded >> {{ tdir }}/handler.log"}
"""


def inventory(lab: Lab) -> str:
    return str(lab.inventory)


def test_site_playbook_changes_then_settles_on_ten_nodes(lab: Lab, cli: Cli) -> None:
    first = cli("deploy", str(ROOT / "playbooks" / "site.yml"), "-i", inventory(lab), "--format", "json",
                check_rc=0)
    doc = first.json()
    assert len(doc["hosts"]) == 10
    assert all(h["status"] in ("changed", "ok") for h in doc["hosts"].values())
    second = cli("deploy", str(ROOT / "playbooks" / "site.yml"), "-i", inventory(lab), "--format", "json",
                 check_rc=0)
    doc2 = second.json()
    assert totals(doc2, "changed") == 0, doc2
    assert all(h["status"] == "ok" for h in doc2["hosts"].values())
    node = lab.node("lab-001")
    assert "name = lab-001" in node.path("/etc/zeta/node.conf").read_text()
    marker = node.path("/var/lib/zeta/state/last-run").read_text()
    assert f"run_id={doc2['run_id']}" in marker and "outcome=ok" in marker


def test_every_step_kind_is_idempotent_and_files_land(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, FILES_PLAYBOOK)
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "app.j2").write_text("[app]\nhost = {{ inventory_hostname }}\n")
    first = cli("deploy", str(play), "-i", inventory(lab), "--limit", "lab-00[1-4]", "--format", "json",
                check_rc=0).json()
    assert len(first["hosts"]) == 4
    # 6 steps + the handler changed on the first run; sshd was already running and enabled
    assert all(h["changed"] == 7 and h["ok"] == 1 and h["status"] == "changed"
               for h in first["hosts"].values()), first
    second = cli("deploy", str(play), "-i", inventory(lab), "--limit", "lab-00[1-4]", "--format", "json",
                 check_rc=0).json()
    assert totals(second, "changed") == 0
    assert all(h["ok"] == 7 for h in second["hosts"].values())
    node = lab.node("lab-002")
    assert node.path("/etc/t-idem/app.conf").read_text() == "name=lab-002\n"
    assert node.path("/etc/t-idem/allow").read_text() == "allow 10.0.0.0/8\n"
    assert oct(node.path("/etc/t-idem/app.conf").stat().st_mode)[-3:] == "640"
    assert oct(node.path("/etc/t-idem").stat().st_mode)[-3:] == "750"
    assert node.path("/etc/t-idem/app.ini").read_text() == "[app]\nhost = lab-002\n"
    assert node.path("/etc/t-idem/current").readlink() == Path("/etc/t-idem/app.conf")
    assert node.path("/etc/t-idem/handler.log").read_text() == "reloaded\n"  # once, not twice
    # private per node: lab-005 was not selected and never saw any of it
    assert not lab.node("lab-005").path("/etc/t-idem").exists()
    assert not Path("/etc/t-idem").exists()  # nor did the machine itself


def test_check_mode_reports_drift_and_changes_nothing(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, "hosts: lab-006\nsteps:\n  - name: conf\n"
                          "    file: {path: /etc/t-check.conf, content: \"wanted\\n\"}\n")
    cli("deploy", str(play), "-i", inventory(lab), check_rc=0)
    node = lab.node("lab-006")
    node.path("/etc/t-check.conf").write_text("drifted by hand\n")
    check = cli("deploy", str(play), "-i", inventory(lab), "--check", "--diff", check_rc=0)
    assert "-drifted by hand" in check.stdout and "+wanted" in check.stdout
    assert "would change" in check.stdout
    assert node.path("/etc/t-check.conf").read_text() == "drifted by hand\n"
    fixed = cli("deploy", str(play), "-i", inventory(lab), "--format", "json", check_rc=0).json()
    assert fixed["hosts"]["lab-006"]["changed"] == 1
    assert node.path("/etc/t-check.conf").read_text() == "wanted\n"
    again = cli("deploy", str(play), "-i", inventory(lab), "--format", "json", check_rc=0).json()
    assert again["hosts"]["lab-006"]["changed"] == 0


def test_bad_input_touches_nothing(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    cases = {
        "yaml": ("hosts: all\nsteps:\n  - file: {path: /etc/t-bad, content: [x\n", "play.yml:4"),
        "kind": ("hosts: all\nsteps:\n  - name: x\n    teleport: {path: /etc/t-bad}\n", "play.yml:4"),
        "option": ("hosts: all\nsteps:\n  - file: {path: /etc/t-bad, content: x, color: red}\n", "play.yml:3"),
        "undefined": ("hosts: all\nsteps:\n  - file: {path: /etc/t-bad, content: x}\n"
                      "  - file: {path: /etc/t-bad2, content: '{{ nope }}'}\n", "play.yml:4"),
    }
    for name, (text, where) in cases.items():
        play = write_playbook(tmp_path / name, text)
        result = cli("deploy", str(play), "-i", inventory(lab))
        assert result.returncode == 4, (name, result)
        assert where in result.stderr, (name, result)
    limit = write_playbook(tmp_path / "limit", "hosts: all\nsteps:\n  - file: {path: /etc/t-bad, content: x}\n")
    result = cli("deploy", str(limit), "-i", inventory(lab), "--limit", "lab-999")
    assert result.returncode == 4 and "lab-999" in result.stderr
    assert cli.run_ids() == []  # no run was even started
    for node in lab.nodes():
        assert not node.path("/etc/t-bad").exists()


def test_adhoc_run_groups_output_per_host(lab: Lab, cli: Cli) -> None:
    ok = cli("run", "hostname; echo to-stderr >&2", "-i", inventory(lab), "--limit", "lab-001,lab-002", check_rc=0)
    assert "== lab-001 (rc=0" in ok.stdout and "\nlab-001\n" in ok.stdout
    assert "== lab-002 (rc=0" in ok.stdout and "stderr: to-stderr" in ok.stdout
    failed = cli("run", "test $(hostname) != lab-002", "-i", inventory(lab), "--limit", "lab-00[1-3]",
                 "--format", "json")
    assert failed.returncode == 2
    statuses = {h: d["status"] for h, d in failed.json()["hosts"].items()}
    assert statuses == {"lab-001": "ok", "lab-002": "failed", "lab-003": "ok"}


def test_runs_list_and_show(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    play = write_playbook(tmp_path, "hosts: lab-007\nsteps:\n  - directory: {path: /etc/t-runs}\n")
    run_id = cli("deploy", str(play), "-i", inventory(lab), "--format", "json", check_rc=0).json()["run_id"]
    listed = cli("runs", "list", check_rc=0)
    assert run_id in listed.stdout and "1 changed" in listed.stdout
    shown = cli("runs", "show", run_id, "--events", check_rc=0)
    assert "lab-007" in shown.stdout
    for state in ("probed", "drifted", "applied", "verified", "done"):
        assert f" {state}" in shown.stdout, shown.stdout
    assert cli("runs", "show", "no-such-run").returncode == 4
