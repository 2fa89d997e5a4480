"""The benchmark's floor: what checking the workload costs with nothing but SSH.

One asyncssh connection per host, all hosts at once, one shell script per host that checks the same
10 things the workload manages (modes, sha256 of the rendered templates, the banner line, the link
target, the `creates` file, sshd active). It changes nothing and knows nothing: it is the least any
tool must do for a no-op run. Run with the project's venv (asyncssh, jinja2, pyyaml):

    .venv/bin/python benchmarks/floor.py check -i LAB/inventory.yml --dir /etc/bench-zetactl
    .venv/bin/python benchmarks/floor.py apply -i LAB/inventory.yml --dir /etc/bench-floor
    .venv/bin/python benchmarks/floor.py reset -i LAB/inventory.yml /etc/bench-zetactl /etc/bench-ansible

`apply` is the floor of a first run: one script per host that makes every change of the workload on a clean
node (no probing, no decisions, no verification: it knows the node is clean), the handler included.
`check` exits 0 when every host passes every check; `reset` removes the given directories (run.py
uses it to give each first run a clean node). Host keys are checked against the lab's pinned
known_hosts (the inventory's zeta_known_hosts), like every tool in the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import jinja2
import yaml

WORKLOAD = Path(__file__).resolve().parent / "workload" / "zetactl"
TEMPLATES = {  # template -> (path under the bench dir, mode): as in workload/zetactl/bench.yml
    "node.conf.j2": ("node.conf", "644"),
    "role.conf.j2": ("conf.d/role.conf", "644"),
    "peers.conf.j2": ("conf.d/peers.conf", "644"),
    "bench.env.j2": ("bench.env", "640"),
}
PLAY_VARS: dict[str, Any] = {"bench_agents": ["otto", "lior", "vera"],
                             "bench_peers": ["alpha", "beta", "gamma", "delta"]}


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    port: int
    user: str
    key: str
    known_hosts: str
    groups: tuple[str, ...]
    vars: dict[str, Any]


def load_nodes(inventory: Path) -> list[Node]:
    """The lab's inventory.yml (all.vars, all.children.lab.hosts, role groups under lab.children)."""
    data = yaml.safe_load(inventory.read_text())["all"]
    common = data.get("vars") or {}
    lab = data["children"]["lab"]
    memberships: dict[str, list[str]] = {}
    for group, body in (lab.get("children") or {}).items():
        for host in (body or {}).get("hosts") or {}:
            memberships.setdefault(host, []).append(group)
    nodes = []
    for name, hostvars in lab["hosts"].items():
        merged = {**common, **(hostvars or {})}
        groups = tuple(sorted({"lab", *memberships.get(name, [])}))
        nodes.append(Node(name, merged["ansible_host"], int(merged.get("ansible_port", 22)),
                          merged["ansible_user"], merged["ansible_ssh_private_key_file"],
                          merged["zeta_known_hosts"], groups, merged))
    return nodes


def check_script(node: Node, bench_dir: str, env: jinja2.Environment) -> str:
    """The shell script that checks the 10 managed things on one node; prints one line per drift."""
    context = render_context(node, bench_dir)
    d = shlex.quote(bench_dir)
    lines = [
        "set -u",
        "cd / || exit 2",
        f'[ -d {d} ] && [ "$(stat -c %a {d})" = 755 ] || echo "drift: directory {bench_dir}"',
        f'[ -d {d}/conf.d ] && [ "$(stat -c %a {d}/conf.d)" = 755 ] || echo "drift: directory conf.d"',
    ]
    for template, (relative, mode) in TEMPLATES.items():
        content = env.get_template(template).render(context).encode()
        digest = hashlib.sha256(content).hexdigest()
        path = shlex.quote(f"{bench_dir}/{relative}")
        lines.append(f'[ -f {path} ] && [ ! -L {path} ] && [ "$(stat -c %a {path})" = {mode} ] && '
                     f'[ "$(sha256sum < {path} | cut -d" " -f1)" = {digest} ] || echo "drift: {relative}"')
    banner = f"bench node {node.name} ({node.vars['zeta_role']})"
    lines += [
        f"grep -qxF -- {shlex.quote(banner)} {d}/motd 2>/dev/null || echo 'drift: motd'",
        f'[ -L {d}/current ] && [ "$(readlink {d}/current)" = {d}/node.conf ] || echo "drift: current"',
        f"[ -e {d}/node-id ] || echo 'drift: node-id'",
        "systemctl is-active --quiet -- sshd.service || echo 'drift: sshd'",
        "echo checked",
    ]
    return "\n".join(lines) + "\n"


def apply_script(node: Node, bench_dir: str, env: jinja2.Environment) -> str:
    """The shell script that makes the 10 changes on a clean node, then prints `checked`."""
    d = shlex.quote(bench_dir)
    lines = ["set -eu", "cd /", f"mkdir -p {d}/conf.d", f"chmod 755 {d} {d}/conf.d"]
    for template, (relative, mode) in TEMPLATES.items():
        content = env.get_template(template).render(render_context(node, bench_dir)).encode()
        path = shlex.quote(f"{bench_dir}/{relative}")
        tmp = shlex.quote(f"{bench_dir}/.{relative.replace('/', '_')}.tmp")
        lines += [f"base64 -d > {tmp} <<'EOF'", base64.b64encode(content).decode(), "EOF",
                  f"chmod {mode} {tmp}", f"mv -f {tmp} {path}"]
    banner = shlex.quote(f"bench node {node.name} ({node.vars['zeta_role']})")
    lines += [
        f"printf '%s\\n' {banner} >> {d}/motd",
        f"ln -sfn {d}/node.conf {d}/current",
        f"[ -e {d}/node-id ] || head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > {d}/node-id",
        "systemctl is-active --quiet -- sshd.service || systemctl start -- sshd.service",
        f"touch {d}/reloaded",
        "echo checked",
    ]
    return "\n".join(lines) + "\n"


def render_context(node: Node, bench_dir: str) -> dict[str, Any]:
    return {**PLAY_VARS, **node.vars, "inventory_hostname": node.name, "group_names": list(node.groups),
            "bench_dir": bench_dir}


KNOWN_HOSTS: dict[str, asyncssh.SSHKnownHosts] = {}


def pinned(path: str) -> asyncssh.SSHKnownHosts:
    """The pinned file, parsed once (asyncssh given a path parses the whole file for every connection)."""
    if path not in KNOWN_HOSTS:
        KNOWN_HOSTS[path] = asyncssh.read_known_hosts(path)
    return KNOWN_HOSTS[path]


async def on_node(node: Node, script: str) -> tuple[str, bool, str]:
    try:
        async with asyncssh.connect(
            node.address, port=node.port, username=node.user, client_keys=[node.key],
            known_hosts=pinned(node.known_hosts), agent_path=None, config=None, connect_timeout=30,
            login_timeout=30,
        ) as conn:
            result = await conn.run("sh -s", input=script, check=False, errors="replace")
    except (OSError, asyncssh.Error) as exc:
        return node.name, False, f"unreachable: {exc}"
    out = str(result.stdout or "") + str(result.stderr or "")
    passed = result.exit_status == 0 and out.strip().endswith("checked") and "drift:" not in out
    return node.name, passed, out.strip()


async def main_async(args: argparse.Namespace) -> int:
    nodes = load_nodes(args.inventory)
    if args.mode in ("check", "apply"):
        env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(WORKLOAD / "templates")),
                                 undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                 autoescape=False)
        make = check_script if args.mode == "check" else apply_script
        scripts = {n.name: make(n, args.dir, env) for n in nodes}
    else:
        dirs = " ".join(shlex.quote(d) for d in args.paths if d.startswith("/etc/bench-"))
        scripts = {n.name: f"rm -rf -- {dirs}\necho checked\n" for n in nodes}
    results = await asyncio.gather(*(on_node(n, scripts[n.name]) for n in nodes))
    failed = [(name, detail) for name, passed, detail in results if not passed]
    for name, detail in failed:
        sys.stderr.write(f"floor: {name}: {detail}\n")
    sys.stdout.write(f"floor {args.mode}: {len(results) - len(failed)}/{len(results)} hosts passed\n")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    check = sub.add_parser("check", help="check the 10 managed things on every host")
    check.add_argument("-i", "--inventory", type=Path, required=True)
    check.add_argument("--dir", default="/etc/bench-zetactl", help="the bench directory to check")
    apply = sub.add_parser("apply", help="make the 10 changes on every (clean) host: the first-run floor")
    apply.add_argument("-i", "--inventory", type=Path, required=True)
    apply.add_argument("--dir", default="/etc/bench-floor", help="the bench directory to write")
    reset = sub.add_parser("reset", help="remove bench directories on every host")
    reset.add_argument("-i", "--inventory", type=Path, required=True)
    reset.add_argument("paths", nargs="+", help="directories under /etc/bench-* to remove")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
