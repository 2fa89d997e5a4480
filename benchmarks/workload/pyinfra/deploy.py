"""The benchmark workload for pyinfra: 10 operations + 1 handler (see benchmarks/README.md).

The same workload is in ../zetactl/bench.yml and ../ansible/bench.yml; the templates are the same
files, rendered with the same variables (Ansible's names: inventory_hostname, group_names, ...).
"""

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.facts.files import File
from pyinfra.operations import files, server


class UnitActive(FactBase[bool]):
    """Whether a systemd unit is active (`systemctl is-active`).

    pyinfra's own systemd.service operation reads its SystemdStatus fact with
    `systemctl show --all --property Id ...`; the lab's systemctl stand-in accepts only the
    `--property=Id` / `-p Id` spellings of that option, so the fact fails there. This fact and
    the condition below do what systemd.service(running=True) does: probe, then start if needed.
    """

    def command(self, unit: str) -> str:
        return f"systemctl is-active -- {unit} || true"

    def process(self, output: list[str]) -> bool:
        return bool(output) and output[0].strip() == "active"

bench_dir = "/etc/bench-pyinfra"
variables = {
    "inventory_hostname": host.name,
    "zeta_role": host.data.zeta_role,
    # Ansible's group_names, written into the generated inventory by run.py (pyinfra's own
    # host.groups also holds a group named after the inventory file).
    "group_names": host.data.group_names,
    "bench_dir": bench_dir,
    "bench_agents": ["otto", "lior", "vera"],
    "bench_peers": ["alpha", "beta", "gamma", "delta"],
}
templates = "benchmarks/workload/pyinfra/templates"

files.directory(name="bench directory", path=bench_dir, mode="755")
files.directory(name="bench conf.d directory", path=f"{bench_dir}/conf.d", mode="755")
node_conf = files.template(name="node description", src=f"{templates}/node.conf.j2",
                           dest=f"{bench_dir}/node.conf", mode="644", **variables)
files.template(name="role settings", src=f"{templates}/role.conf.j2",
               dest=f"{bench_dir}/conf.d/role.conf", mode="644", **variables)
files.template(name="peer list", src=f"{templates}/peers.conf.j2",
               dest=f"{bench_dir}/conf.d/peers.conf", mode="644", **variables)
files.template(name="environment file", src=f"{templates}/bench.env.j2",
               dest=f"{bench_dir}/bench.env", mode="640", **variables)
files.line(name="banner line", path=f"{bench_dir}/motd", line="^bench node .*$",
           replace=f"bench node {host.name} ({host.data.zeta_role})")
files.link(name="current config link", path=f"{bench_dir}/current", target=f"{bench_dir}/node.conf")
# `creates`: pyinfra has no such argument; the idiom is a fact (a remote stat) and a condition.
if host.get_fact(File, path=f"{bench_dir}/node-id") is None:
    server.shell(name="node id (made once)",
                 commands=[f"head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \\n' > {bench_dir}/node-id"])
if not host.get_fact(UnitActive, unit="sshd.service"):
    server.shell(name="sshd is running", commands=["systemctl start -- sshd.service"])

# The handler: runs only when the node description changed.
server.shell(name="reload bench", commands=[f"touch {bench_dir}/reloaded"], _if=node_conf.did_change)
