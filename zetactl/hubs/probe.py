"""Prove, from the tenant machine, what each hub accepts and refuses.

One script over the tenant machine's SSH connection runs every request with curl (scripts/hub_probe.sh). A token is
read from its file on the node into a header file in a private temporary folder (`curl -H @file`): no token is ever
in a command line or back on the controller. The answer of each request is its HTTP status (and,
for an accepted one, the tenant the hub says it served).

Cases, per hub service:
    accept         the tenant's token, as the tenant                       -> 200, naming the tenant
    no-token       no Authorization header                                  -> 401
    wrong-token    a well-formed token registered nowhere                   -> 401
    other-tenant   the tenant's valid token under another tenant's identity -> 401
    other-service  the tenant's token for another service kind              -> 401
    old-token      a revoked (rotated or removed) token                     -> 401
Anything else fails the check: a refusal answered 5xx is a server error; no answer means the hub is down.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zetactl.hubs import tokens
from zetactl.hubs.model import HubService
from zetactl.inventory import Host
from zetactl.remote import BadAnswer, Records, Sh, lines, sh, shown
from zetactl.remote import script as script_
from zetactl.remote.runner import run
from zetactl.transport import ConnectOptions, connect

WHOAMI = "/v1/whoami"
TIMEOUT = 5


@dataclass(frozen=True)
class Check:
    case: str
    hub: HubService
    token_file: str  # path on the tenant machine, "" for none, "@wrong" for a throwaway token
    context: str  # the X-Hero-Context sent

    @property
    def expect(self) -> int:
        return 200 if self.case == "accept" else 401


@dataclass(frozen=True)
class Result:
    check: Check
    code: str  # the HTTP status as curl printed it ("000": no answer)
    served: str  # the tenant an accepting hub named

    @property
    def ok(self) -> bool:
        if self.check.case == "accept":
            return self.code == "200" and self.served == self.check.context
        return self.code == "401"

    @property
    def answered(self) -> bool:
        return self.code not in ("000", "missing-file", "no-curl")

    def verdict(self) -> str:
        if self.code == "no-curl":
            return "curl is not installed on the tenant machine"
        if self.code == "missing-file":
            return f"token file {self.check.token_file} missing on the tenant machine"
        if self.code == "000":
            return "no answer (hub down?)"
        if self.ok:
            return "accepted" if self.check.case == "accept" else "refused"
        if self.check.case == "accept":
            return f"REFUSED ({self.code})" if self.code != "200" else f"accepted as {self.served!r}, not the tenant"
        if self.code.startswith("2"):
            return f"NOT REFUSED ({self.code})"
        return f"server error or odd answer ({self.code})"


def tenant_checks(identity: str, own: list[HubService], *, other_identity: str) -> list[Check]:
    """The accept/refuse proof for a tenant holding a token for each of `own`'s service kinds."""
    from zetactl.hubs.model import token_path

    kinds = sorted({h.name for h in own})
    checks: list[Check] = []
    for hub in own:
        mine = token_path(hub.name)
        checks += [Check("accept", hub, mine, identity), Check("no-token", hub, "", identity),
                   Check("wrong-token", hub, "@wrong", identity), Check("other-tenant", hub, mine, other_identity)]
        other = next((k for k in kinds if k != hub.name), None)
        if other:
            checks.append(Check("other-service", hub, token_path(other), identity))
    return checks


def script(checks: list[Check]) -> Sh:
    """One script for every check: fields under `hub.` (scripts/hub_probe.sh)."""
    throwaway = tokens.mint().token.reveal().decode()  # well-formed, registered nowhere
    return lines(Sh("zk=hub"), script_("hub_probe.sh", WRONG=throwaway, TIMEOUT=TIMEOUT),
                 *(sh(Sh("zh_hub"), index, check.token_file, check.context, check.hub.url + WHOAMI)
                   for index, check in enumerate(checks)))


def parse(records: Records, checks: list[Check]) -> list[Result]:
    found = records.under("hub")
    if found.get("curl") == "missing":
        return [Result(c, "no-curl", "") for c in checks]
    results = []
    for index, check in enumerate(checks):
        code = found.get(str(index), "000")
        if not re.fullmatch(r"[0-9]{3}|missing-file", code):
            raise BadAnswer(f"the hub probe answered {shown(code[:40], line=True)!r} for request {index}")
        results.append(Result(check, code, found.get(f"{index}.served", "")))
    return results


async def run_checks(host: Host, checks: list[Check], options: ConnectOptions) -> list[Result]:
    """Run the checks on the tenant machine (one connection, one script). Unreachable propagates."""
    if not checks:
        return []
    async with await connect(host, options) as conn:
        result = await run(conn, script(checks))
    return parse(result.records(), checks)
