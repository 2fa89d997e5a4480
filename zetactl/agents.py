"""`zetactl agents status`: which agent personas run on which node, and the control-plane floor.

Agents are the `zeta-<persona>.service` units on a node (hub services `zeta-hub-*`, tenant apps
`zeta-tenant-*` and zetactl's own `zeta-switch` are not agents). Every control-plane node must
keep at least FLOOR of them active, so the agents can repair the cluster when k8s is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from zetactl.adhoc import run_command
from zetactl.inventory import Host
from zetactl.remote import BadAnswer, Sh, lines, shown, source
from zetactl.transport import ConnectOptions

FLOOR = 3

STATUS_SCRIPT = lines(source("agents.sh"), Sh('zf agents "$(za_show)"'))  # read-only


@dataclass
class NodeAgents:
    host: str
    control_plane: bool
    reachable: bool = True
    error: str = ""
    agents: dict[str, str] = field(default_factory=dict)  # persona -> ActiveState

    @property
    def active(self) -> list[str]:
        return sorted(p for p, s in self.agents.items() if s == "active")

    @property
    def below_floor(self) -> bool:
        return self.control_plane and self.reachable and len(self.active) < FLOOR

    def to_json(self) -> dict[str, object]:
        return {"control_plane": self.control_plane, "reachable": self.reachable, "error": self.error,
                "agents": self.agents, "active": len(self.active), "below_floor": self.below_floor}


def is_control_plane(host: Host) -> bool:
    return "control_plane" in host.groups or host.role in ("control-plane", "control_plane")


def parse_status(text: str) -> dict[str, str]:
    agents: dict[str, str] = {}
    unit = ""
    for line in text.split("\n"):
        key, _, value = line.partition("=")
        if key == "Id":
            unit = value.strip()
        elif key == "ActiveState" and unit:
            persona = unit.removesuffix(".service").removeprefix("zeta-")
            agents[persona] = value.strip()
    return agents


async def agents_status(hosts: Sequence[Host], *, forks: int, timeout: float, options: ConnectOptions
                        ) -> list[NodeAgents]:
    results = await run_command(hosts, STATUS_SCRIPT, forks=forks, timeout=timeout, options=options)
    by_name = {h.name: h for h in hosts}
    nodes = []
    for result in results:
        node = NodeAgents(result.host, is_control_plane(by_name[result.host]))
        if result.status == "unreachable":
            node.reachable = False
            node.error = result.error
        elif result.exit_status != 0 or result.answer is None:
            node.error = f"status script failed (exit {result.exit_status}): {shown(result.stderr.strip()[-200:])}"
        else:
            try:
                node.agents = parse_status(result.answer.records().text("agents"))
            except BadAnswer as exc:
                node.error = f"the node's answer was not well formed: {exc}"
        nodes.append(node)
    return nodes
