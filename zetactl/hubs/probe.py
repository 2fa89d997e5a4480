"""Prove, from the tenant machine, what each hub accepts and refuses.

One script over the tenant machine's SSH connection runs every request with curl. A token is read from its
file on the node into a header file in a private temporary folder (`curl -H @file`): no token is ever in a
command line, in the script, or back on the controller. The answer of each request is its HTTP status (and,
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
import shlex
from dataclasses import dataclass

from zetactl.hubs import tokens
from zetactl.hubs.model import HubService
from zetactl.inventory import Host
from zetactl.transport import ConnectOptions, connect, run

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


def script(checks: list[Check]) -> str:
    throwaway = tokens.mint().token.reveal().decode()  # well-formed, registered nowhere
    lines = [PRELUDE, "cat > \"$W/wrong\" <<'ZETA_WRONG'", throwaway, "ZETA_WRONG",
             "printf '%s' \"$(cat \"$W/wrong\")\" > \"$W/wrong\""]
    for index, check in enumerate(checks):
        file = "$W/wrong" if check.token_file == "@wrong" else check.token_file
        lines.append(f"probe {index} \"{file}\" {shlex.quote(check.context)} {shlex.quote(check.hub.url + WHOAMI)}")
    return "\n".join(lines) + "\n"


PRELUDE = rf"""set -u
command -v curl >/dev/null 2>&1 || {{ echo no-curl; exit 0; }}
W=$(umask 077; mktemp -d /run/zeta-probe.XXXXXX 2>/dev/null || mktemp -d)
trap 'rm -rf "$W"' EXIT
chmod 0700 "$W"
probe() {{  # index token-file context url
  : > "$W/h"
  if [ -n "$2" ]; then
    [ -r "$2" ] || {{ echo "$1 missing-file"; return; }}
    {{ printf 'Authorization: Bearer '; cat "$2"; printf '\n'; }} > "$W/h"
  fi
  : > "$W/body"
  code=$(curl -s -o "$W/body" -w '%{{http_code}}' --max-time {TIMEOUT} -H @"$W/h" -H "X-Hero-Context: $3" "$4" \
    2>/dev/null) || true
  served=$(sed -n 's/.*"tenant": *"\([^"]*\)".*/\1/p' "$W/body" | head -n 1)
  echo "$1 ${{code:-000}} $served"
}}"""


def parse(stdout: str, checks: list[Check]) -> list[Result]:
    if stdout.strip() == "no-curl":
        return [Result(c, "no-curl", "") for c in checks]
    seen: dict[int, tuple[str, str]] = {}
    for line in stdout.splitlines():
        match = re.fullmatch(r"(\d+) (\S+) ?(\S*)", line.strip())
        if match and int(match[1]) < len(checks):
            seen[int(match[1])] = (match[2], match[3])
    return [Result(c, *seen.get(i, ("000", ""))) for i, c in enumerate(checks)]


async def run_checks(host: Host, checks: list[Check], options: ConnectOptions) -> list[Result]:
    """Run the checks on the tenant machine (one connection, one script). Unreachable propagates."""
    if not checks:
        return []
    async with await connect(host, options) as conn:
        result = await run(conn, "sh", script(checks))
    return parse(str(result.stdout), checks)
