"""A canary secret goes to a node as a sensitive file and appears in no output, journal or record."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import Cli, needs_lab, write_playbook
from zetactl.lab import Lab

pytestmark = [needs_lab]
CANARY = "zeta-CANARY-9f3e1c7a5b"


def test_canary_never_leaks(lab: Lab, cli: Cli, tmp_path: Path) -> None:
    (tmp_path / "token.txt").write_text(f"token={CANARY}\n")
    play = write_playbook(tmp_path, """\
hosts: lab-010
steps:
  - directory: {path: /etc/t-secret, mode: "0700"}
  - name: api token
    file: {path: /etc/t-secret/token, source: token.txt, mode: "0600", sensitive: true}
""")
    outputs = []
    for args in (["--check", "--diff"], ["--diff"], ["--diff", "--format", "json"], ["--check", "--diff"]):
        result = cli("deploy", str(play), "-i", str(lab.inventory), *args)
        assert result.returncode == 0, result
        outputs += [result.stdout, result.stderr]
    assert "sensitive content changed (not shown)" in "".join(outputs)
    node_file = lab.node("lab-010").path("/etc/t-secret/token")
    assert node_file.read_text() == f"token={CANARY}\n"  # it was delivered
    assert oct(node_file.stat().st_mode)[-3:] == "600"
    for run_id in cli.run_ids():
        outputs.append(cli("runs", "show", run_id, "--events", "--format", "json").stdout)
        for path in (cli.home / "runs" / run_id).iterdir():
            outputs.append(path.read_text())
    leaked = [text for text in outputs if CANARY in text]
    assert not leaked, leaked[0][:500]
