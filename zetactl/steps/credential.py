"""The credential step kind: install a sealed credential on its node, or retire older generations.

The controller sends only the envelope (ciphertext sealed to the node's host key), inside the
script on stdin. The node opens it with the stock `age` tool and its own host key, checks the
digest that binds the whole header and the value (format v2: any edited byte is refused; a v1
envelope is refused with the way to reseal it), then the header (its own node id, the name,
expiry, a generation not older than the installed one), writes
the value to tmpfs with its mode and owner (temp file + rename), points the credential's path at
that generation (symlink swapped atomically), keeps the previous generation, stores the envelope
and a marker under /var/lib/zeta/creds (for `creds list` and `health`), and restarts the declared
units. After a reboot empties /run, the next push sees the value missing and installs it again.
`--diff` shows generations and short digests, never a value.
"""

from __future__ import annotations

import base64
from typing import ClassVar

from zetactl.creds import areas
from zetactl.errors import BadInput
from zetactl.remote import BadAnswer, Sh, fail, lines, script, sh, shown, source
from zetactl.remote.frame import c_string, fields, number
from zetactl.steps.base import Change, Decision, NoChange, Observed, Option, Step

NODE_STATE = "/var/lib/zeta/creds"
GENERATIONS = "/run/zeta/creds/.gen"
REFUSED = 3  # the install script's exit code for a refused envelope


class Credential(Step):
    kind: ClassVar[str] = "credential"
    options: ClassVar[dict[str, Option]] = {
        "name": Option((str,), required=True, help="credential name (zetactl creds seal NAME ...)"),
        "retire": Option((bool,), default=False, help="remove generations older than the installed one"),
    }

    def setup(self) -> None:
        from zetactl.creds import store  # the records live with the controller's state

        try:
            self.record = store.load(self.args["name"])
        except BadInput as exc:
            raise self.where.error(f"credential: {exc.message}") from None
        if not self.host:
            raise self.where.error("credential: the step needs its host")
        try:
            self.record.check_envelope_format()  # `creds push` checked already; this is for hand-written playbooks
        except BadInput as exc:
            raise self.where.error(exc.message) from None
        entry = self.record.hosts.get(self.host)
        if entry is None:
            raise self.where.error(f"credential {self.record.name!r} is not sealed for {self.host}: "
                                   f"zetactl creds seal {self.record.name} --hosts {self.host}")
        self.generation = self.record.generation
        self.digest = entry["digest"]
        # where the node accepts the path (a record sealed before areas existed: anywhere in /run, as then)
        self.areas = tuple(entry.get("areas") or ("/run",))
        self.node = entry["node"]
        path = self.record.envelope_path(self.host)
        if not path.is_file():
            raise self.where.error(f"credential {self.record.name!r}: envelope {path} is missing")
        self.envelope = path.read_bytes()

    @property
    def name(self) -> str:
        return self.record.name

    def target(self) -> str:
        return f"{self.name} -> {self.record.target.path}"

    def touches(self) -> tuple[str, ...]:
        return (self.record.target.path, f"{NODE_STATE}/{self.name}.meta", f"{GENERATIONS}/{self.name}")

    def probe_script(self) -> Sh:
        return script("credential_probe.sh", N=self.name, STATE=NODE_STATE, GENS=GENERATIONS,
                      TARGET=self.record.target.path)

    def _installed(self, observed: Observed) -> tuple[int, str, bool]:
        """(installed generation, its digest, whether its file has the wanted attributes and the path links to it)."""
        meta = fields(observed.get("meta", ""), f"{NODE_STATE}/{self.name}.meta")
        generation = number(meta.get("generation", "")) or 0
        target = self.record.target
        stat = observed.get("stat", "").split(" ")
        right = (len(stat) == 3 and stat[0].rjust(4, "0") == target.mode and stat[1] == target.owner
                 and stat[2] == target.group and observed.get("link") == f"{GENERATIONS}/{self.name}/{generation}")
        return generation, meta.get("digest", ""), right

    def decide(self, observed: Observed) -> Decision:
        generation, digest, right = self._installed(observed)
        short = self.digest[:12]
        if generation > self.generation:
            return Change(f"node has generation {generation} of {self.name}, newer than the controller's "
                          f"{self.generation}",
                          fail(f"refusing to go back from generation {generation} to {self.generation}", REFUSED))
        current = generation == self.generation and digest == self.digest and right
        value = observed.get("value")  # None: installed by a zetactl that kept no header to check it against
        replaced = value is not None and value != self.digest
        if self.args["retire"]:
            old = [g for g in generations(observed) if number(g) not in (None, self.generation)]
            if not current:
                return Change(f"cannot retire: generation {self.generation} of {self.name} is not installed",
                              fail(f"generation {self.generation} of {self.name} is not installed", REFUSED))
            if not old:
                return NoChange(f"only generation {self.generation} of {self.name} is on the node")
            return Change(f"retire {self.name} generation(s) {', '.join(sorted(old))}",
                          lines(*(sh(Sh("rm -f --"), f"{GENERATIONS}/{self.name}/{g}") for g in old)),
                          f"{self.name}: retire generation(s) {', '.join(sorted(old))}\n")
        if current and not replaced:
            checked = "value verified" if value is not None else \
                "value not verifiable: installed by an older zetactl, until its next generation"
            return NoChange(f"{self.name} generation {self.generation} installed (digest {short}..., {checked})")
        if current:
            why = "its value was changed on the node: it no longer matches the envelope's digest (reinstall)"
        elif generation == self.generation and digest == self.digest:
            why = "missing, wrong mode/owner, or its path links elsewhere (reinstall)"
        else:
            why = f"generation {generation or 'none'} -> {self.generation}"
        diff = (f"{self.name}: {why}; digest {digest[:12] or '-'}... -> {short}...; "
                f"{self.record.target.path} {self.record.target.mode} {self.record.target.owner}\n")
        return Change(f"install {self.name} ({why})", self.install_script(), diff)

    def install_script(self) -> Sh:
        return lines(source("credential_check.sh"),
                     script("credential_install.sh", N=self.name, ENVELOPE=base64.b64encode(self.envelope).decode(),
                            STATE=NODE_STATE, GENS=GENERATIONS, REFUSED=REFUSED, AREAS="\n".join(self.areas),
                            SYSTEM="\n".join((*areas.SYSTEM, *areas.INTERNAL))))


def generations(observed: Observed) -> list[str]:
    """The generation files of a credential on the node (`ls --quoting-style=c`: each name C-quoted)."""
    found = []
    for line in observed.get("gens", "").split("\n"):
        if not line:
            continue  # none yet (never installed, or a reboot emptied /run)
        name, end = c_string(line.encode("utf-8", "surrogateescape"), 0)
        if end != len(line.encode("utf-8", "surrogateescape")):
            raise BadAnswer(f"ls answered {shown(line[:60], line=True)!r}")
        found.append(name.decode("utf-8", "surrogateescape"))
    return found
