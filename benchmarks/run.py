"""Benchmark zetactl against Ansible and pyinfra, and against a bare-SSH floor, on the loopback lab.

For each fleet size: start a lab (`zetactl lab up N --subnet 100`), reset the nodes, then for each tool
run the same 10-step workload (benchmarks/workload/<tool>/) twice: a first run that changes everything
and a no-op re-run, each timed as the wall time of the tool's whole command. Both runs are checked:
the first must change exactly what the workload declares on every host, the re-run nothing at all.
Then time the floor (benchmarks/floor.py: one asyncssh connection per host checking the same 10
things). Print the table and write it, with a machine description, to docs/benchmarks.md.

    .venv/bin/python benchmarks/run.py --sizes 10,50,100

Standard library only; the tools come from venvs this script makes under benchmarks/.work/venvs/
(zetactl and the floor use the project's .venv).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks"
WORK = BENCH / ".work"
VENVS = WORK / "venvs"
LAB_DIR = WORK / "lab"
LOGS = WORK / "logs"
WORKLOAD = BENCH / "workload"
PROJECT_PYTHON = ROOT / ".venv" / "bin" / "python"
ZETACTL = ROOT / ".venv" / "bin" / "zetactl"
FLOOR = BENCH / "floor.py"
DOC = ROOT / "docs" / "benchmarks.md"

SUBNET = 100  # 127.0.100.x: never the subnet of the project's own tests (10)
TOOLS = ("zetactl", "ansible", "pyinfra")
BENCH_DIRS = {tool: f"/etc/bench-{tool}" for tool in (*TOOLS, "floor")}
# On a clean node 9 of the 10 steps change (sshd is already running), plus the notified handler.
FIRST_RUN_CHANGES = 10
VENV_SPECS = {"ansible": "ansible-core>=2.19,<2.20", "pyinfra": "pyinfra>=3,<4"}
RUN_TIMEOUT = 3600.0


class BenchError(Exception):
    """A run failed or did not report what the workload must report: the benchmark stops."""


def log(message: str) -> None:
    sys.stderr.write(f"[{datetime.now().strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# -- processes ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Completed:
    seconds: float
    cpu: float  # user+sys CPU seconds of the command and the children it waited for (the controller)
    returncode: int
    stdout: str
    stderr: str
    log: Path
    max_rss_kib: int = 0  # the command's peak resident memory (its largest process), KiB


def run_timed(cmd: Sequence[str | Path], name: str, env: Mapping[str, str] | None = None) -> Completed:
    """Run one command from the repo root; its wall time is the measurement. Output goes to a log.

    CPU time and peak memory are the command's own (wait4 on its pid), not the benchmark's other children."""
    args = [str(a) for a in cmd]
    LOGS.mkdir(parents=True, exist_ok=True)
    out_path, err_path = LOGS / f"{name}.stdout", LOGS / f"{name}.stderr"
    with out_path.open("w+", errors="replace") as out, err_path.open("w+", errors="replace") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, cwd=ROOT, env=dict(env) if env is not None else None,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        timer = threading.Timer(RUN_TIMEOUT, proc.kill)  # a hung tool fails the benchmark, never stalls it
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            raise
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    out_path.unlink()
    err_path.unlink()
    cpu = usage.ru_utime + usage.ru_stime
    path = LOGS / f"{name}.log"
    path.write_text(f"$ {shlex.join(args)}\n# exit {proc.returncode} after {seconds:.3f}s "
                    f"({cpu:.2f}s controller CPU, peak {usage.ru_maxrss} KiB)\n# --- stdout\n{stdout}\n"
                    f"# --- stderr\n{stderr}")
    return Completed(seconds, cpu, proc.returncode, stdout, stderr, path, usage.ru_maxrss)


def output_of(cmd: Sequence[str | Path], env: Mapping[str, str] | None = None, *, stderr: bool = True) -> str:
    """The command's output (`stderr=False`: its stdout alone, e.g. JSON a warning on stderr must not break)."""
    proc = subprocess.run([str(a) for a in cmd], cwd=ROOT, env=dict(env) if env is not None else None,
                          capture_output=True, text=True, errors="replace", check=False, timeout=600)
    if proc.returncode != 0:
        shown = shlex.join(str(a) for a in cmd)
        raise BenchError(f"{shown} exited {proc.returncode}:\n{proc.stderr.strip()}")
    return (proc.stdout + (proc.stderr if stderr else "")).strip()


# -- venvs -------------------------------------------------------------------------------------
def ensure_venv(name: str, spec: str) -> Path:
    """benchmarks/.work/venvs/NAME with SPEC installed; made once, reused while SPEC is unchanged."""
    venv = VENVS / name
    stamp = venv / ".bench-installed"
    python = venv / "bin" / "python"
    if python.exists() and stamp.is_file() and stamp.read_text().strip() == spec:
        return venv
    log(f"venv {venv}: installing {spec}")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", spec],
                   check=True)
    stamp.write_text(spec + "\n")
    return venv


# -- the lab -----------------------------------------------------------------------------------
class Lab:
    """The benchmark's lab: benchmarks/.work/lab, subnet 100, fresh (new nodes, new keys) per size."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.inventory = LAB_DIR / "inventory.yml"
        self.known_hosts = LAB_DIR / "known_hosts"
        self.size = 0

    def up(self, size: int) -> None:
        self.down()
        if LAB_DIR.exists():
            shutil.rmtree(LAB_DIR)
        log(f"lab: starting {size} nodes on 127.0.{SUBNET}.x")
        output_of([ZETACTL, "lab", "up", str(size), "--dir", LAB_DIR, "--subnet", str(SUBNET),
                   "--timeout", "300"], self.env)
        self.size = size
        if len(self.known_hosts.read_text().splitlines()) != size:
            raise BenchError(f"lab: expected {size} pinned host keys in {self.known_hosts}")

    def down(self) -> None:
        if (LAB_DIR / "lab.json").exists():
            output_of([ZETACTL, "lab", "down", "--dir", LAB_DIR], self.env)
        self.size = 0


# -- the tools ---------------------------------------------------------------------------------
@dataclass
class Measurements:
    """Seconds per (size, tool, phase), each a list over --repeat runs."""

    runs: dict[int, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    cpu: dict[int, dict[str, dict[str, list[float]]]] = field(default_factory=dict)
    rss: dict[int, dict[str, dict[str, list[float]]]] = field(default_factory=dict)  # peak KiB

    def add(self, size: int, tool: str, phase: str, result: Completed) -> None:
        self.runs.setdefault(size, {}).setdefault(tool, {}).setdefault(phase, []).append(result.seconds)
        self.cpu.setdefault(size, {}).setdefault(tool, {}).setdefault(phase, []).append(round(result.cpu, 3))
        self.rss.setdefault(size, {}).setdefault(tool, {}).setdefault(phase, []).append(result.max_rss_kib)

    def median(self, size: int, tool: str, phase: str, *, cpu: bool = False, rss: bool = False) -> float | None:
        values = (self.rss if rss else self.cpu if cpu else self.runs).get(size, {}).get(tool, {}).get(phase)
        return statistics.median(values) if values else None


def expect_changes(tool: str, phase: str, changed: Mapping[str, int], hosts: int, result: Completed) -> None:
    """The first run changes FIRST_RUN_CHANGES things on every host; the re-run changes nothing."""
    want = FIRST_RUN_CHANGES if phase == "first" else 0
    if len(changed) != hosts:
        raise BenchError(f"{tool} {phase} run: {len(changed)} hosts in its report, expected {hosts} "
                         f"(exit {result.returncode}; see {result.log})")
    wrong = {host: n for host, n in changed.items() if n != want}
    if wrong:
        sample = ", ".join(f"{h}: {n}" for h, n in sorted(wrong.items())[:5])
        raise BenchError(f"{tool} {phase} run: {len(wrong)} hosts reported a change count other than {want} "
                         f"({sample}); see {result.log}")


class Zetactl:
    name = "zetactl"

    def __init__(self, lab: Lab, env: Mapping[str, str]) -> None:
        self.lab = lab
        self.env = {**env, "ZETACTL_HOME": str(WORK / "zetactl-home")}

    def command(self, inventory: Path, limit: str | None = None) -> list[str | Path]:
        cmd: list[str | Path] = [ZETACTL, "deploy", WORKLOAD / "zetactl" / "bench.yml", "-i", inventory,
                                 "--forks", str(max(self.lab.size, 1)), "--format", "json", "--no-progress"]
        return [*cmd, "--limit", limit] if limit else cmd

    def run(self, phase: str, label: str) -> Completed:
        result = run_timed(self.command(self.lab.inventory), label, self.env)
        try:
            document = json.loads(result.stdout)
            hosts = document["hosts"]
        except (ValueError, KeyError, TypeError):
            raise BenchError(f"zetactl {phase} run: no JSON report (exit {result.returncode}); "
                             f"see {result.log}") from None
        bad = {h: v for h, v in hosts.items() if v["status"] not in ("ok", "changed") or v["failed"]}
        if result.returncode != 0 or bad:
            sample = "; ".join(f"{h}: {v['status']}: {v['error']}" for h, v in sorted(bad.items())[:3])
            raise BenchError(f"zetactl {phase} run exited {result.returncode}: {sample}; see {result.log}")
        changed = {h: int(v["changed"]) for h, v in hosts.items()}
        expect_changes(self.name, phase, changed, self.lab.size, result)
        return result

    def refuses_wrong_key(self, bad_inventory: Path) -> bool:
        result = run_timed(self.command(bad_inventory, "lab-001"), "hostkey-selftest-zetactl", self.env)
        try:
            host = json.loads(result.stdout)["hosts"]["lab-001"]
        except (ValueError, KeyError, TypeError):
            return False
        return (result.returncode != 0 and host["status"] == "unreachable"
                and "host key" in host["error"].lower())


class Ansible:
    name = "ansible"
    RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)

    def __init__(self, lab: Lab, env: Mapping[str, str], venv: Path) -> None:
        self.lab = lab
        self.home = WORK / "ansible-home"
        self.control_dir = self.home / "cp"
        self.venv = venv
        self.env = {**env, "ANSIBLE_CONFIG": str(WORKLOAD / "ansible" / "ansible.cfg"),
                    "ANSIBLE_HOST_KEY_CHECKING": "True", "ANSIBLE_HOME": str(self.home),
                    "ANSIBLE_LOCAL_TEMP": str(self.home / "tmp"),
                    "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.control_dir)}

    def command(self, known_hosts: Path, limit: str | None = None) -> list[str | Path]:
        ssh_args = f"-o UserKnownHostsFile={known_hosts} -o StrictHostKeyChecking=yes"
        cmd: list[str | Path] = [self.venv / "bin" / "ansible-playbook", "-i", self.lab.inventory,
                                 WORKLOAD / "ansible" / "bench.yml",
                                 "-e", json.dumps({"ansible_ssh_common_args": ssh_args})]
        return [*cmd, "--limit", limit] if limit else cmd

    def close_masters(self) -> None:
        """End ControlPersist masters left by an earlier run, so that every first run starts cold."""
        if not self.control_dir.is_dir():
            return
        for socket_path in self.control_dir.iterdir():
            subprocess.run(["ssh", "-o", f"ControlPath={socket_path}", "-O", "exit", "bench"],
                           capture_output=True, check=False, timeout=30)

    def run(self, phase: str, label: str) -> Completed:
        if phase == "first":
            self.close_masters()
        for sub in (self.home / "tmp", self.control_dir):
            sub.mkdir(parents=True, exist_ok=True)
        env = {**self.env, "ANSIBLE_FORKS": str(max(self.lab.size, 1))}
        result = run_timed(self.command(self.lab.known_hosts), label, env)
        recap = {m[1]: (int(m[3]), int(m[4]), int(m[5])) for m in self.RECAP.finditer(result.stdout)}
        bad = {h: r for h, r in recap.items() if r[1] or r[2]}
        if result.returncode != 0 or bad or not recap:
            raise BenchError(f"ansible {phase} run exited {result.returncode} "
                             f"(unreachable/failed on {sorted(bad)[:5]}); see {result.log}")
        expect_changes(self.name, phase, {h: r[0] for h, r in recap.items()}, self.lab.size, result)
        return result

    def refuses_wrong_key(self, bad_known_hosts: Path) -> bool:
        env = {**self.env, "ANSIBLE_FORKS": "1",
               "ANSIBLE_SSH_CONTROL_PATH_DIR": str(self.home / "cp-selftest")}
        (self.home / "tmp").mkdir(parents=True, exist_ok=True)
        result = run_timed(self.command(bad_known_hosts, "lab-001"), "hostkey-selftest-ansible", env)
        text = result.stdout + result.stderr
        return result.returncode != 0 and "UNREACHABLE" in text and "host key" in text.lower()


class Pyinfra:
    name = "pyinfra"
    LINE = re.compile(r"^\s+\[(\S+)\] (Success|No changes|Error)", re.M)
    CONNECTED = re.compile(r"^\s+\[(\S+)\] Connected", re.M)

    def __init__(self, lab: Lab, env: Mapping[str, str], venv: Path, ansible_venv: Path) -> None:
        self.lab = lab
        self.env = dict(env)
        self.venv = venv
        self.ansible_venv = ansible_venv
        self.inventory = WORK / "pyinfra" / "inventory.py"

    def write_inventory(self, known_hosts: Path, path: Path) -> None:
        """The lab inventory as a pyinfra inventory file: one group per lab group, SSH data per host.

        The lab's YAML is read through `ansible-inventory --list` (the harness has no YAML parser),
        so pyinfra sees exactly the hosts, addresses, keys and variables Ansible sees.
        """
        listing = json.loads(output_of([self.ansible_venv / "bin" / "ansible-inventory",
                                        "-i", self.lab.inventory, "--list"], stderr=False))
        hostvars: dict[str, dict[str, object]] = listing["_meta"]["hostvars"]

        def members(group: str) -> set[str]:
            body = listing.get(group, {})
            found = set(body.get("hosts", []))
            for child in body.get("children", []):
                found |= members(child)
            return found

        groups = {g: members(g) for g in listing if g not in ("_meta", "all", "ungrouped")}
        lines = [f"# Written by benchmarks/run.py from {self.lab.inventory}: do not edit.", ""]
        for group in sorted(groups):
            if not group.isidentifier():
                raise BenchError(f"group {group!r} cannot be a pyinfra group name")
        entries = []
        for host in sorted(hostvars):
            hv = hostvars[host]
            data = {
                "ssh_hostname": hv["ansible_host"], "ssh_port": hv.get("ansible_port", 22),
                "ssh_user": hv["ansible_user"], "ssh_key": hv["ansible_ssh_private_key_file"],
                "ssh_known_hosts_file": str(known_hosts), "ssh_strict_host_key_checking": "yes",
                "zeta_role": hv["zeta_role"],
                "group_names": sorted(g for g, hosts in groups.items() if host in hosts),
            }
            entries.append(f"    ({host!r}, {data!r}),")
        lines += ["lab = [", *entries, "]"]
        for group in sorted(groups):
            if group != "lab":
                lines.append(f"{group} = {sorted(groups[group])!r}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(lines) + "\n")

    def command(self, inventory: Path, limit: str | None = None) -> list[str | Path]:
        cmd: list[str | Path] = [self.venv / "bin" / "pyinfra", "-y", "--parallel",
                                 str(max(self.lab.size, 1)), inventory, WORKLOAD / "pyinfra" / "deploy.py"]
        return [*cmd[:2], "--limit", limit, *cmd[2:]] if limit else cmd

    def run(self, phase: str, label: str) -> Completed:
        result = run_timed(self.command(self.inventory), label, self.env)
        text = result.stdout + result.stderr  # pyinfra reports on stderr
        connected = set(self.CONNECTED.findall(text))
        changed = {h: 0 for h in connected}
        errors = []
        for host, what in self.LINE.findall(text.split("--> Beginning operation run", 1)[-1]):
            if what == "Success":
                changed[host] = changed.get(host, 0) + 1
            elif what == "Error":
                errors.append(host)
        if result.returncode != 0 or errors:
            raise BenchError(f"pyinfra {phase} run exited {result.returncode} "
                             f"(errors on {sorted(errors)[:5]}); see {result.log}")
        expect_changes(self.name, phase, changed, self.lab.size, result)
        return result

    def refuses_wrong_key(self, bad_known_hosts: Path) -> bool:
        inventory = WORK / "pyinfra" / "inventory-selftest.py"
        self.write_inventory(bad_known_hosts, inventory)
        result = run_timed(self.command(inventory, "lab-001"), "hostkey-selftest-pyinfra", self.env)
        text = result.stdout + result.stderr
        return result.returncode != 0 and not self.CONNECTED.search(text) and "host key" in text.lower()


class Floor:
    name = "floor"

    def __init__(self, lab: Lab, env: Mapping[str, str]) -> None:
        self.lab = lab
        self.env = dict(env)

    def check(self, label: str) -> Completed:
        result = run_timed([PROJECT_PYTHON, FLOOR, "check", "-i", self.lab.inventory,
                            "--dir", BENCH_DIRS["zetactl"]], label, self.env)
        want = f"floor check: {self.lab.size}/{self.lab.size} hosts passed"
        if result.returncode != 0 or want not in result.stdout:
            raise BenchError(f"floor check failed (exit {result.returncode}); see {result.log}")
        return result

    def reset(self, label: str) -> None:
        result = run_timed([PROJECT_PYTHON, FLOOR, "reset", "-i", self.lab.inventory, *BENCH_DIRS.values()],
                           label, self.env)
        if result.returncode != 0:
            raise BenchError(f"could not reset the nodes (exit {result.returncode}); see {result.log}")

    def apply(self, label: str) -> Completed:
        """The first-run floor: one script per host making every change (timed), then checked (not timed)."""
        result = run_timed([PROJECT_PYTHON, FLOOR, "apply", "-i", self.lab.inventory,
                            "--dir", BENCH_DIRS["floor"]], label, self.env)
        if result.returncode != 0:
            raise BenchError(f"floor apply failed (exit {result.returncode}); see {result.log}")
        self.verify_other("floor", f"{label}-verify")
        return result

    def verify_other(self, tool: str, label: str) -> None:
        """The other tools' trees must hold the same content (an equivalence check, not timed)."""
        result = run_timed([PROJECT_PYTHON, FLOOR, "check", "-i", self.lab.inventory,
                            "--dir", BENCH_DIRS[tool]], label, self.env)
        if result.returncode != 0:
            raise BenchError(f"{tool} left {BENCH_DIRS[tool]} different from the workload's spec; "
                             f"see {result.log}")


# -- the host-key self-test --------------------------------------------------------------------
def host_key_self_test(lab: Lab, zetactl: Zetactl, ansible: Ansible, pyinfra: Pyinfra,
                       chosen: Sequence[str] = TOOLS) -> None:
    """Each tool must refuse lab-001 when its pinned key is wrong: proof that checking is on."""
    lines = lab.known_hosts.read_text().splitlines()
    if len(lines) < 2:
        raise BenchError("the host-key self-test needs a lab of at least 2 nodes")
    addresses = [ln.split()[0] for ln in lines]
    keys = [" ".join(ln.split()[1:3]) for ln in lines]
    rotated = [f"{addresses[i]} {keys[(i + 1) % len(keys)]}" for i in range(len(lines))]
    bad_known_hosts = WORK / "selftest" / "known_hosts"
    bad_known_hosts.parent.mkdir(parents=True, exist_ok=True)
    bad_known_hosts.write_text("\n".join(rotated) + "\n")
    inventory_text = lab.inventory.read_text()
    if str(lab.known_hosts) not in inventory_text:
        raise BenchError(f"{lab.inventory} does not name {lab.known_hosts}")
    bad_inventory = WORK / "selftest" / "inventory.yml"
    bad_inventory.write_text(inventory_text.replace(str(lab.known_hosts), str(bad_known_hosts)))
    checks = {
        "zetactl": lambda: zetactl.refuses_wrong_key(bad_inventory),
        "ansible": lambda: ansible.refuses_wrong_key(bad_known_hosts),
        "pyinfra": lambda: pyinfra.refuses_wrong_key(bad_known_hosts),
    }
    results = {tool: check() for tool, check in checks.items() if tool in chosen}
    accepted = [tool for tool, refused in results.items() if not refused]
    if accepted:
        raise BenchError(f"host-key self-test: {', '.join(accepted)} did not refuse a wrong pinned key "
                         f"(logs: {LOGS}/hostkey-selftest-*.log)")
    log(f"host-key self-test: {', '.join(results)} each refused a node whose pinned key was wrong")


# -- the machine -------------------------------------------------------------------------------
def first_match(path: str, pattern: str) -> str:
    try:
        text = Path(path).read_text()
    except OSError:
        return "?"
    match = re.search(pattern, text, re.M)
    return match.group(1).strip() if match else "?"


def package_version(python: Path, package: str) -> str:
    try:
        return output_of([python, "-c", f"import importlib.metadata as m; print(m.version({package!r}))"])
    except BenchError:
        return "?"


def machine_description(ansible_venv: Path, pyinfra_venv: Path) -> list[tuple[str, str]]:
    mem_kib = first_match("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    memory = f"{int(mem_kib) / 1024 / 1024:.1f} GiB" if mem_kib.isdigit() else "?"
    commit = "?"
    try:
        commit = output_of(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
        if output_of(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"]):
            commit += " (work tree had uncommitted changes)"
    except (BenchError, OSError):
        pass
    os_name = first_match("/etc/os-release", r'^PRETTY_NAME="?([^"\n]*)')
    ssh_version = subprocess.run(["ssh", "-V"], capture_output=True, text=True, check=False).stderr.strip()
    sshd = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "openssh-server"], capture_output=True,
                          text=True, check=False).stdout.strip()
    return [
        ("CPUs (nproc)", str(len(os.sched_getaffinity(0)))),
        ("CPU model", first_match("/proc/cpuinfo", r"^model name\s*:\s*(.+)$")),
        ("memory", memory),
        ("OS", f"{os_name}, kernel {platform.release()}"),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("zetactl", f"{package_version(PROJECT_PYTHON, 'zetactl')} at commit {commit}, "
                    f"asyncssh {package_version(PROJECT_PYTHON, 'asyncssh')}"),
        ("Ansible", f"ansible-core {package_version(ansible_venv / 'bin' / 'python', 'ansible-core')}"),
        ("pyinfra", f"pyinfra {package_version(pyinfra_venv / 'bin' / 'python', 'pyinfra')}, "
                    f"paramiko {package_version(pyinfra_venv / 'bin' / 'python', 'paramiko')}, "
                    f"gevent {package_version(pyinfra_venv / 'bin' / 'python', 'gevent')}"),
        ("OpenSSH", f"{ssh_version} (client); openssh-server {sshd or '?'} (the lab's sshd)"),
    ]


# -- the report --------------------------------------------------------------------------------
def seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def ratio(top: float | None, bottom: float | None) -> str:
    return "-" if top is None or bottom is None or bottom <= 0 else f"{top / bottom:.1f}x"


def tables(m: Measurements, sizes: Sequence[int]) -> list[tuple[str, list[str], list[list[str]]]]:
    noop_rows, first_rows = [], []
    for size in sizes:
        z, a, p, f = (m.median(size, tool, "noop") for tool in (*TOOLS, "floor"))
        noop_rows.append([str(size), seconds(z), seconds(a), seconds(p), seconds(f),
                          ratio(a, z), ratio(p, z), ratio(z, f)])
        z1, a1, p1, f1 = (m.median(size, tool, "first") for tool in (*TOOLS, "floor"))
        first_rows.append([str(size), seconds(z1), seconds(a1), seconds(p1), seconds(f1), ratio(a1, z1),
                           ratio(p1, z1), ratio(z1, f1)])
    return [
        ("No-op re-run, wall seconds", ["hosts", "zetactl", "ansible", "pyinfra", "floor", "ansible/zetactl",
                                        "pyinfra/zetactl", "zetactl/floor"], noop_rows),
        ("First run (everything changes), wall seconds", ["hosts", "zetactl", "ansible", "pyinfra", "floor",
                                                          "ansible/zetactl", "pyinfra/zetactl", "zetactl/floor"],
         first_rows),
    ]


def format_table(headers: list[str], rows: list[list[str]]) -> str:
    """A GitHub-markdown table (tabulate's 'github' format when tabulate is importable)."""
    try:
        from tabulate import tabulate  # optional: the project's venv has it
    except ImportError:
        widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.rjust(w) if i else c.ljust(w)
                                     for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"

        rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
        return "\n".join([line(headers), rule, *(line(r) for r in rows)])
    return str(tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True,
                        colalign=("left", *("right",) * (len(headers) - 1))))


def cpu_table(m: Measurements, sizes: Sequence[int]) -> str:
    rows = [[str(size), *(seconds(m.median(size, tool, phase, cpu=True)) for phase in ("noop", "first")
                          for tool in TOOLS)] for size in sizes]
    headers = ["hosts", *(f"{tool} {phase}" for phase in ("no-op", "first") for tool in TOOLS)]
    per_step = [[str(size), *(per_host_step(m.median(size, "zetactl", phase, cpu=True), size)
                              for phase in ("noop", "first"))] for size in sizes]
    return (format_table(headers, rows) + "\n\nzetactl's controller CPU per host-step (10 steps per host), "
            "milliseconds:\n\n" + format_table(["hosts", "no-op", "first"], per_step))


def per_host_step(cpu: float | None, hosts: int) -> str:
    return "-" if cpu is None else f"{cpu * 1000 / (hosts * FIRST_RUN_CHANGES):.1f}"


def scale_table(s: Measurements, sizes: Sequence[int]) -> str:
    """zetactl and the floor at fleet scale: wall times, growth against linear, memory and CPU per host."""
    rows = []
    base = sizes[0]
    for size in sizes:
        row = [str(size)]
        for phase in ("noop", "first"):
            z, f = s.median(size, "zetactl", phase), s.median(size, "floor", phase)
            z0 = s.median(base, "zetactl", phase)
            growth = "-" if z is None or z0 is None or size == base else f"{z / z0:.2f}x for {size / base:g}x hosts"
            row += [seconds(z), seconds(f), ratio(z, f), growth]
        peak = s.median(size, "zetactl", "first", rss=True)
        peak0 = s.median(base, "zetactl", "first", rss=True)
        per_host = "-" if peak is None or peak0 is None or size == base else f"{(peak - peak0) / (size - base):.0f}"
        row += ["-" if peak is None else f"{peak / 1024:.0f}", per_host,
                per_host_step(s.median(size, "zetactl", "noop", cpu=True), size),
                per_host_step(s.median(size, "zetactl", "first", cpu=True), size)]
        rows.append(row)
    headers = ["hosts", "zetactl no-op", "floor no-op", "zetactl/floor", f"growth from {base}",
               "zetactl first", "floor first", "zetactl/floor", f"growth from {base}",
               "peak MiB", f"KiB per host over {base}", "CPU ms/host-step no-op", "CPU ms/host-step first"]
    return format_table(headers, rows)


def render_tables(m: Measurements, sizes: Sequence[int], repeat: int) -> str:
    note = "one run each" if repeat == 1 else f"median of {repeat} runs each"
    return "\n\n".join(f"**{title}** ({note})\n\n{format_table(headers, rows)}"
                       for title, headers, rows in tables(m, sizes))


def write_doc(m: Measurements, sizes: Sequence[int], repeat: int, command: str,
              machine: list[tuple[str, str]], started: datetime, duration: float,
              loads: tuple[str, str], scaled: Measurements, scale_sizes: Sequence[int]) -> None:
    machine_rows = "\n".join(f"- **{k}**: {v}" for k, v in machine)
    runs_per_number = "a single run per number" if repeat == 1 else f"each number the median of {repeat} runs"
    scale_text = "" if not scale_sizes else f"""
**At fleet scale: zetactl and the floors alone** (same workload, same checks; Ansible is left out here: it
needs minutes per run from 100 hosts on)

{scale_table(scaled, scale_sizes)}

Growth is zetactl's wall time against its time at {scale_sizes[0]} hosts (linear would be the ratio of the
host counts). Peak MiB is the largest resident size of the zetactl process (wait4's ru_maxrss); KiB per
host is its growth per added host. CPU per host-step is the controller's user+sys time divided by
hosts x 10 steps.
"""
    text = f"""# Benchmarks: zetactl vs Ansible vs pyinfra

Written by `benchmarks/run.py` on {started.strftime('%Y-%m-%d %H:%M UTC')} (the whole run took
{duration / 60:.0f} minutes). Reproduce with:

```
{command}
```

{render_tables(m, sizes, repeat)}

Ratios above 1x mean the first-named tool took longer. The floors are the least any tool can do:
for a no-op run, one SSH connection per host and one shell script checking the 10 managed things;
for a first run, one SSH connection per host and one shell script making the 10 changes on a clean
node, knowing it is clean (no probe, no decision, no verification). `zetactl/floor` is zetactl's
overhead over bare SSH.

**Controller CPU, user+sys seconds** (of each tool's command and the child processes it waited
for; not the nodes' side, nor Ansible's ControlPersist masters; same runs as above)

{cpu_table(m, sizes)}
{scale_text}
The nodes run on the same 2 cores as the controller, so a wall time also pays for the nodes' work
(sshd, the remote shell or Python) and for whatever else the machine was doing.

## What ran

Every tool ran against the **same lab** (`zetactl lab up N --subnet {SUBNET}`: N real OpenSSH sshd
nodes on 127.0.{SUBNET}.x, a fresh lab for each size) with the **same pinned host keys** (the lab's
`known_hosts`), and **host-key checking on** for every tool: zetactl always checks; Ansible ran with
`ANSIBLE_HOST_KEY_CHECKING=True` and `-o UserKnownHostsFile=<lab known_hosts> -o
StrictHostKeyChecking=yes`; pyinfra with `ssh_known_hosts_file=<lab known_hosts>` and
`ssh_strict_host_key_checking=yes`; the floor with asyncssh `known_hosts=<lab known_hosts>`. Before
timing, a self-test gave each tool a known_hosts with a wrong key for lab-001 and checked that each
refused to connect.

The workload (`benchmarks/workload/<tool>/`) is the same 10 steps for each tool, each in its own
tree on the nodes (`/etc/bench-zetactl`, `/etc/bench-ansible`, `/etc/bench-pyinfra`): 2 directories,
4 Jinja2 templates (the same template files, rendered with host variables: `inventory_hostname`,
`zeta_role`, `group_names`), 1 line-in-file, 1 symlink, 1 command with `creates`, sshd started; one
template notifies a handler that runs `touch`. Per size and run: the nodes' trees are removed, each
tool does a **first run** (must report exactly {FIRST_RUN_CHANGES} changes on every host: 9 steps + the
handler) and then a **no-op re-run** (must report 0 changes on every host), and the floor checks the
zetactl tree. zetactl runs between its two floors, back to back (the first-run floor, zetactl's first run
and re-run, the no-op floor), so both terms of a zetactl/floor ratio are taken within seconds of each other:
this shared machine's speed drifts over minutes. Then pyinfra, then Ansible. After timing, the floor's
checks also pass on the Ansible and pyinfra trees (same content, same modes). A time is the wall time of
the tool's whole command (interpreter start, inventory and playbook loading, connections, work), taken by
`time.perf_counter()` around it.

- **zetactl**: `zetactl deploy bench.yml -i <lab inventory> --forks N --format json --no-progress`.
- **Ansible**: `ansible-playbook` with `benchmarks/workload/ansible/ansible.cfg` (forks = N,
  `pipelining = True`, `ssh_args = -o ControlMaster=auto -o ControlPersist=60s`, `gathering = explicit`
  and `gather_facts: false`, `interpreter_python = /usr/bin/python3`, default linear strategy), on the
  lab's YAML inventory as it is. Every first run starts with no ControlPersist master; the no-op
  re-run reuses the masters the first run left, as ControlPersist is meant to.
- **pyinfra**: `pyinfra -y --parallel N <inventory.py> deploy.py`, with an inventory file generated
  from the lab's (same hosts, addresses, key, variables). pyinfra has no `creates`; the workload uses
  its idiom (a `File` fact, then the command only if the file is missing). The sshd step uses a small
  `systemctl is-active` fact and `systemctl start` when inactive instead of `systemd.service`:
  pyinfra's own `SystemdStatus` fact calls `systemctl show --property Id ...`, and the lab's
  `systemctl` stand-in accepts only `--property=Id` / `-p Id`, so it fails there.
- **floor**: `benchmarks/floor.py check`, run with the project's `.venv/bin/python`.

## Machine

{machine_rows}
- **load average** (1, 5, 15 min): {loads[0]} at the start, {loads[1]} at the end

The machine has 2 cores shared by the controller and every node, and {runs_per_number}: the
load averages above tell how busy it was (Ansible's forks alone push it past 30). Compare ratios
within a row rather than absolute times across runs.
"""
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(text + kept_sections())


def kept_sections() -> str:
    """Sections other benchmarks keep in docs/benchmarks.md (between <!-- NAME:begin/end --> markers)."""
    if not DOC.exists():
        return ""
    old = DOC.read_text()
    kept = []
    for start in re.finditer(r"<!-- (\w+):begin -->", old):
        end = old.find(f"<!-- {start.group(1)}:end -->", start.end())
        if end > 0:
            kept.append(old[start.start():end + len(f"<!-- {start.group(1)}:end -->")])
    return "".join(f"\n{section}\n" for section in kept)


# -- main --------------------------------------------------------------------------------------
def parse_sizes(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--sizes: comma-separated integers, not {text!r}") from None
    if not sizes or any(not 2 <= s <= 2000 for s in sizes):
        raise argparse.ArgumentTypeError("each size must be between 2 and 2000 (the lab's limit)")
    return sizes


def parse_tools(text: str) -> list[str]:
    tools = [t.strip() for t in text.split(",") if t.strip()]
    unknown = [t for t in tools if t not in TOOLS]
    if not tools or unknown or "zetactl" not in tools:
        raise argparse.ArgumentTypeError(f"--tools: a list of {', '.join(TOOLS)} that includes zetactl")
    return tools


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def display_command() -> str:
    python = Path(sys.executable)
    try:
        shown = str(python.relative_to(ROOT)) if python.is_relative_to(ROOT) else str(python)
    except ValueError:
        shown = str(python)
    script = Path(sys.argv[0]).resolve()
    script_shown = str(script.relative_to(ROOT)) if script.is_relative_to(ROOT) else str(script)
    return shlex.join([shown, script_shown, *sys.argv[1:]])


def benchmark(sizes: Sequence[int], repeat: int, m: Measurements, lab: Lab, zetactl: Zetactl,
              ansible: Ansible, pyinfra: Pyinfra, floor: Floor, chosen: Sequence[str] = TOOLS) -> None:
    """Per size and repeat: zetactl between its two floors (measured back to back, so that the machine's speed,
    which drifts over minutes on a shared host, is the same for a ratio's two terms), then pyinfra, then
    Ansible (minutes per run: last)."""
    every: dict[str, Zetactl | Ansible | Pyinfra] = {"zetactl": zetactl, "pyinfra": pyinfra, "ansible": ansible}
    tools = {name: tool for name, tool in every.items() if name in chosen}
    for index, size in enumerate(sizes):
        lab.up(size)
        if "pyinfra" in chosen:
            pyinfra.write_inventory(lab.known_hosts, pyinfra.inventory)
        if index == 0:
            host_key_self_test(lab, zetactl, ansible, pyinfra, chosen)
        for r in range(repeat):
            tag = f"n{size}-r{r + 1}"
            floor.reset(f"{tag}-reset")  # also warms every node's sshd before anything is timed
            for name, tool in tools.items():
                if name == "zetactl":
                    timed_with_floors(m, size, f"{tag}", zetactl, floor, f"{size} hosts, run {r + 1}/{repeat}")
                    continue
                for phase in ("first", "noop"):
                    log(f"{size} hosts, run {r + 1}/{repeat}: {name} {phase} ...")
                    result = tool.run(phase, f"{tag}-{name}-{phase}")
                    m.add(size, name, phase, result)
                    log(f"{size} hosts, run {r + 1}/{repeat}: {name} {phase}: {result.seconds:.2f}s "
                        f"({result.cpu:.1f}s controller CPU)")
            for name in tools:
                if name != "zetactl":
                    floor.verify_other(name, f"{tag}-verify-{name}")


def timed_with_floors(m: Measurements, size: int, tag: str, zetactl: Zetactl, floor: Floor, label: str) -> None:
    """The first-run floor, zetactl's first run and no-op re-run, the no-op floor: back to back."""
    result = floor.apply(f"{tag}-floor-first")
    m.add(size, "floor", "first", result)
    log(f"{label}: floor first run: {result.seconds:.2f}s")
    for phase in ("first", "noop"):
        result = zetactl.run(phase, f"{tag}-zetactl-{phase}")
        m.add(size, "zetactl", phase, result)
        log(f"{label}: zetactl {phase}: {result.seconds:.2f}s ({result.cpu:.1f}s controller CPU, "
            f"peak {result.max_rss_kib / 1024:.0f} MiB)")
    result = floor.check(f"{tag}-floor")
    m.add(size, "floor", "noop", result)
    log(f"{label}: floor: {result.seconds:.2f}s")


def scale(sizes: Sequence[int], repeat: int, s: Measurements, lab: Lab, zetactl: Zetactl, floor: Floor) -> None:
    """zetactl and the floors only (Ansible needs minutes per run from 100 hosts on): fleet growth."""
    for size in sizes:
        lab.up(size)
        for r in range(repeat):
            tag = f"scale{size}-r{r + 1}"
            floor.reset(f"{tag}-reset")
            timed_with_floors(s, size, tag, zetactl, floor, f"scale {size} hosts")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=parse_sizes, default=[10, 50, 100],
                        help="fleet sizes (default 10,50,100)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs per number; the median is reported (default 1)")
    parser.add_argument("--scale", type=parse_sizes, default=[],
                        help="also run zetactl and the floors alone at these sizes, e.g. 100,500 (growth, memory)")
    parser.add_argument("--tools", type=parse_tools, default=list(TOOLS),
                        help="tools for the comparison (default zetactl,ansible,pyinfra)")
    parser.add_argument("--no-doc", action="store_true",
                        help="print the table only; leave docs/benchmarks.md as it is")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if os.geteuid() != 0:
        parser.error("the lab needs root")
    for needed in (PROJECT_PYTHON, ZETACTL):
        if not needed.exists():
            parser.error(f"{needed} is missing: install the project into .venv first")

    started = datetime.now(UTC)
    command = display_command()
    load_start = loadavg()
    if LOGS.exists():
        shutil.rmtree(LOGS)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "PYINFRA_", "ZETACTL_"))}
    ansible_venv = ensure_venv("ansible", VENV_SPECS["ansible"])
    pyinfra_venv = ensure_venv("pyinfra", VENV_SPECS["pyinfra"])
    machine = machine_description(ansible_venv, pyinfra_venv)

    lab = Lab(env)
    zetactl = Zetactl(lab, env)
    ansible = Ansible(lab, env, ansible_venv)
    pyinfra = Pyinfra(lab, env, pyinfra_venv, ansible_venv)
    floor = Floor(lab, env)
    m, scaled = Measurements(), Measurements()
    try:
        benchmark(args.sizes, args.repeat, m, lab, zetactl, ansible, pyinfra, floor, args.tools)
        scale(args.scale, args.repeat, scaled, lab, zetactl, floor)
    except BenchError as exc:
        log(f"FAILED: {exc}")
        return 1
    except KeyboardInterrupt:
        log("interrupted")
        return 130
    finally:
        log("lab: stopping")
        try:
            lab.down()
        except BenchError as exc:
            log(f"lab: could not stop it: {exc}")
        ansible.close_masters()

    duration = (datetime.now(UTC) - started).total_seconds()
    (WORK / "results.json").write_text(json.dumps({
        "command": command, "started": started.isoformat(), "duration_seconds": round(duration, 1),
        "wall_seconds": m.runs, "controller_cpu_seconds": m.cpu, "peak_rss_kib": m.rss,
        "scale": {"wall_seconds": scaled.runs, "controller_cpu_seconds": scaled.cpu, "peak_rss_kib": scaled.rss}},
        indent=1) + "\n")
    sys.stdout.write(render_tables(m, args.sizes, args.repeat) + "\n")
    if args.scale:
        sys.stdout.write("\n" + scale_table(scaled, args.scale) + "\n")
    if not args.no_doc:
        write_doc(m, args.sizes, args.repeat, command, machine, started, duration, (load_start, loadavg()),
                  scaled, args.scale)
        log(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
