"""Regenerate docs/reliability.md: run the fault suite, the property-based suite, the hostile-value corpus, the
secret-leak sweeps and the load test, and write down what was tried and what was lost.

    .venv/bin/python tests/faults/report.py            (as root: the lab; about 10 minutes on 2 cores)
    .venv/bin/python tests/faults/report.py --no-load  (without the 500-node load test)

Each fault test writes a row to a ledger (tests/faults/ledger.py) once its checks passed; a test that
failed writes none, and the report then says so and exits non-zero.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
PYTHON = ROOT / ".venv" / "bin" / "python"

SUITES = {
    "faults": ["tests/faults"],
    "properties": ["tests/test_properties.py"],
    "hostile": ["tests/e2e/test_hostile.py"],
    "secrets": ["tests/e2e/test_secrets.py", "tests/e2e/test_creds.py::test_canary_appears_nowhere_but_on_the_node",
                "tests/e2e/test_hubs.py",  # its sweep searches what the module's earlier tests did
                "tests/e2e/test_secret_sweeps.py"],
    "load": ["tests/load"],
}
SECRET_SWEEPS = {
    "test_canary_never_leaks": "deploy (--check, --diff, --format json) of a sensitive file; runs show; run files",
    "test_canary_appears_nowhere_but_on_the_node": "creds seal/push/--check --diff/rotate/a failing push/list/verify"
                                                   " with debug logs; node logs, /etc, /var, /nix, /tmp, /run, "
                                                   "remote command lines",
    "test_no_token_appears_in_any_output_log_journal_or_command_line": (
        "the tenant and hub commands of tests/e2e/test_hubs.py (add, rotate, remove, hub tokens, verify, "
        "reconcile); logs, journals, registries, remote command lines"),
    "test_node_commands_leak_no_private_key": (
        "node register (unreachable, wrong fingerprint, refused login, --bootstrap-key, homelab), rotate-identity "
        "(also of a node down), run to a rekeyed node, rekey-host and trust (wrong and right fingerprints), retire "
        "(floor, unreachable, --force, per-node key); operator, bootstrap, per-node and host private keys"),
    "test_read_only_commands_leak_no_installed_credential": (
        "health (table, json, prometheus --output, --history, a node down, a credential missing, bad --format), "
        "run (reading the credential, failing, unreachable), agents status, inventory list/show/graph, runs "
        "list/show --events; a credential installed by creds seal + push (twice), the operator key"),
    "test_plan_and_diff_leak_no_sensitive_file_content": (
        "plan (table, json, --limit, -e) of a sensitive source file and template; sensitive templates that fail "
        "(syntax, Python error, filter, undefined variable, inline content, missing src); deploy --check --diff, "
        "--diff twice; runs show"),
    "test_lab_and_blob_commands_leak_no_key_passphrase_or_value": (
        "lab up/status/fresh (the private key given, a missing key, the public key)/reboot/down; creds seal-blob "
        "(--passphrase-fd, 0600 --passphrase-file, --stdin; refusals), open-blob (wrong passphrase, USB id, name, "
        "0644 file, non-UTF-8 passphrase, not a blob); the boot-time zeta-restore; passphrases, values, keys"),
}


def run_suite(name: str, ledger: Path, report: Path) -> tuple[int, float]:
    env = {**os.environ, "ZETACTL_FAULT_LEDGER": str(ledger), "ZETACTL_LOAD": "1"}
    started = time.monotonic()
    proc = subprocess.run([str(PYTHON), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", str(report),
                           *SUITES[name]], cwd=ROOT, env=env)
    return proc.returncode, time.monotonic() - started


def junit_cases(report: Path) -> list[tuple[str, str]]:
    """(test name, outcome) from a junit XML report."""
    import xml.etree.ElementTree as ET

    cases = []
    for case in ET.parse(report).iter("testcase"):
        outcome = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                outcome = "FAILED"
            elif child.tag == "skipped":
                outcome = "skipped"
        cases.append((case.get("name", "?"), outcome))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-load", action="store_true", help="leave out the 500-node load test")
    parser.add_argument("--no-doc", action="store_true")
    parser.add_argument("--suites", default=",".join(SUITES), help="the suites to run (default all)")
    parser.add_argument("--work", type=Path, help="a directory of an earlier report: its results of the suites "
                                                  "not run now are kept")
    args = parser.parse_args()
    started = datetime.now(UTC)
    work = args.work or Path(tempfile.mkdtemp(prefix="zeta-reliability-"))
    ledger = work / "ledger.jsonl"
    ledger.touch()
    chosen = [s for s in args.suites.split(",") if s]
    results: dict[str, tuple[int, float, list[tuple[str, str]]]] = {}
    for name in SUITES:
        if name == "load" and args.no_load:
            continue
        meta = work / f"{name}.json"
        if name in chosen:
            rc, seconds = run_suite(name, ledger, work / f"{name}.xml")
            meta.write_text(json.dumps({"rc": rc, "seconds": seconds}))
        elif meta.exists():
            rc, seconds = json.loads(meta.read_text())["rc"], json.loads(meta.read_text())["seconds"]
        else:
            continue
        results[name] = (rc, seconds, junit_cases(work / f"{name}.xml"))
    rows = [json.loads(line) for line in ledger.read_text().splitlines() if line.strip()]
    failed = [(suite, case) for suite, (_, _, cases) in results.items() for case, o in cases if o == "FAILED"]

    lines = ["# Reliability: faults tried, inputs tried, what was lost", "",
             f"Written by `tests/faults/report.py{' --no-load' if args.no_load else ''}` on "
             f"{started.strftime('%Y-%m-%d %H:%M')} UTC ({os.cpu_count()} cores), against the lab (real OpenSSH "
             "nodes on loopback). Every row is a check that passed; a failing check leaves its row out and is "
             "listed at the end.", ""]
    lines += ["## Faults", "", "| fault injected | expected | observed | lost | runs |", "|---|---|---|---|---|"]
    faults = [r for r in rows if not str(r["fault"]).startswith(("load:", "hostile:"))]
    grouped: dict[tuple[str, str], list[dict[str, object]]] = {}
    for row in faults:
        grouped.setdefault((str(row["fault"]), str(row["expected"])), []).append(row)
    for (fault, expected), group in grouped.items():
        observed = group[0]["observed"] if len(group) == 1 else f"{len(group)} times: " + "; ".join(
            str(r["observed"]).split(";")[0] for r in group)
        lost = ", ".join(sorted({str(r["lost"]) for r in group}))
        runs = sum(int(str(r["runs"])) for r in group)
        lines.append(f"| {fault} | {expected} | {observed} | {lost} | {runs} |")
    lines += ["", "How the clock and link faults are made (docs/lab.md): a skewed clock is libfaketime preloaded for "
              "every process of that node only (`lab skew`); a slow link is a delaying, rate-capping TCP relay in "
              "front of the node's sshd (`lab slow`: this kernel has no `tc` qdiscs, and delaying all of loopback "
              "would slow the whole machine).", ""]
    props = results.get("properties")
    if props:
        lines += ["## Inputs (property-based, hypothesis)", "",
                  "Up to 300 generated inputs per property, each run; the property must hold for every one.", "",
                  "| property | result |", "|---|---|"]
        lines += [f"| {case.removeprefix('test_').replace('_', ' ')} | {outcome} |" for case, outcome in props[2]]
        lines.append("")
    hostile = [r for r in rows if str(r["fault"]).startswith("hostile:")]
    if hostile:
        sys.path.insert(0, str(ROOT))
        from tests.e2e.test_hostile import CORPUS

        fields = [r for r in hostile if "." in str(r["fault"]).split(" ", 1)[1].split(" ")[0]]
        tried = sum(int(str(r["runs"])) for r in fields)
        lines += ["## Hostile inputs", "",
                  f"`tests/e2e/test_hostile.py`: {len(CORPUS)} hostile values ({', '.join(CORPUS)}; each tries "
                  "to run `touch /tmp/ZETA_PWNED`, or the same in the login's home, the way shell injection would) "
                  f"through {len(fields)} fields of every step kind and gate, in the normal and every error path, and "
                  "through every command and inventory entry that takes a name, against lab nodes. A value is "
                  "refused where it enters (exit 4, one line, nothing touched) or taken literally. Rules: a path is "
                  "absolute, without control characters, valid Unicode, 255 bytes a name and 4096 in all; a link "
                  "target, `creates` and `chdir` the same but may be relative; a `line` is one line; a unit name "
                  "is systemd's (letters, digits, `:_.\\@-`); owners and groups are user names; a mode is octal; "
                  "host names, roles and node ids are letters, digits, `._:-`. File contents may hold any "
                  "valid Unicode. A playbook's `command`, `unless` and a gate's `command` are the operator's own "
                  "shell and run as written.", "",
                  "| where | expected | observed |", "|---|---|---|"]
        lines += [f"| {str(r['fault']).removeprefix('hostile: ')} | {r['expected']} | {r['observed']} |"
                  for r in hostile]
        lines += ["", f"**{tried} field values tried at plan time, markers found: 0.**", ""]
    secrets = results.get("secrets")
    if secrets:
        lines += ["## Secret-leak sweeps", "", "A canary secret is planted and searched for in every output, log, "
                  "journal, record, exception, node file and remote command line.", "",
                  "| sweep | commands | canary hits |", "|---|---|---|"]
        for case, outcome in secrets[2]:
            if case not in SECRET_SWEEPS:
                continue  # the tests before a sweep, which it searches
            hits = "0" if outcome == "passed" else outcome
            lines.append(f"| {case} | {SECRET_SWEEPS.get(case, '')} | {hits} |")
        lines.append("")
    load = [r for r in rows if str(r["fault"]).startswith("load:")]
    if load:
        lines += ["## Load", "", "| load | expected | observed |", "|---|---|---|"]
        lines += [f"| {r['fault'].removeprefix('load: ')} | {r['expected']} | {r['observed']} |" for r in load]
        lines.append("")
    lines += ["## Runs", "", "| suite | tests | passed | wall s |", "|---|---|---|---|"]
    for suite, (_, seconds, cases) in results.items():
        passed = sum(1 for _, o in cases if o == "passed")
        lines.append(f"| {suite} ({' '.join(SUITES[suite])}) | {len(cases)} | {passed} | {seconds:.0f} |")
    recorded = len([r for r in rows if not str(r["fault"]).startswith("hostile:")])
    lines += ["", f"**Lost: nothing** in {recorded} recorded faults and load runs." if not failed else
              f"**FAILED**: {', '.join(f'{s}: {c}' for s, c in failed)}", ""]
    text = "\n".join(lines)
    print(text)
    if not args.no_doc:
        DOC.write_text(text)
    return 1 if failed or any(rc not in (0, 5) for rc, _, _ in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
