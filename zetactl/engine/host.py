"""One host's run: lock, probe, decide, apply, verify, record, over one SSH connection.

Each step moves through the table in states.py; every move is journaled. Probes for all steps go
in one round trip; consecutive changes go in one apply+verify round trip; a change that may make
a later probe stale (same path, or a command) flushes the batch and re-probes what follows.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import asyncssh

from zetactl.engine import remote
from zetactl.engine.gate import run_gate
from zetactl.engine.outcome import SUCCESSES, HostOutcome, StepRecord
from zetactl.engine.states import State, check_transition
from zetactl.errors import BadInput
from zetactl.facts import facts_script, parse_facts
from zetactl.journal import Journal
from zetactl.plan import HostPlan, PlannedStep, validate_steps
from zetactl.remote import EMPTY, Answer, BadAnswer, Sh, shown
from zetactl.remote.runner import LockBusy, LockSession, run, run_fresh
from zetactl.steps import ActionStep, Change, NoChange, Observed, Option, Step, Where
from zetactl.transport import ConnectOptions, Unreachable, connect

FACTS_KEY = -1  # the facts probe's record key in the first round trip


@dataclass(frozen=True)
class RunSettings:
    run_id: str
    playbook: str
    check: bool = False
    diff: bool = False
    timeout: float = 600.0  # whole-host deadline
    lock_timeout: float = 30.0
    connect: ConnectOptions = field(default_factory=ConnectOptions)


@dataclass(frozen=True)
class Resume:
    """What an earlier attempt of this run finished on this host."""

    done: frozenset[int] = frozenset()
    notified: frozenset[str] = frozenset()


Listener = Callable[[str, StepRecord], None]


class FactsProbe(Step):
    """Not a playbook step: reads the facts in the same round trip as the lock and the probes."""

    kind: ClassVar[str] = "facts"
    options: ClassVar[Mapping[str, Option]] = {}

    def probe_script(self) -> Sh:
        return facts_script()

    def decide(self, observed: Observed) -> NoChange:
        return NoChange("facts read")


class Actions:
    """The ActionContext lent to an action step: the run's lock session (the runner's first mode), fresh
    connections (its second), the journal."""

    def __init__(self, run: HostRun, conn: asyncssh.SSHClientConnection, key: int) -> None:
        self._run = run
        self._conn = conn
        self._key = key
        self.host = run.host.name
        self.run_id = run.settings.run_id

    async def run(self, script: Sh, timeout: float) -> Answer:
        try:
            return await asyncio.wait_for(self._run._sh(self._conn, script), timeout)
        except TimeoutError:
            self._run.session = None  # an answer may still come on it: the session cannot be trusted any more
            raise Unreachable(f"no answer within {timeout:g}s") from None

    async def run_fresh(self, script: Sh, timeout: float) -> Answer:
        options = ConnectOptions(connect_timeout=min(timeout, self._run.settings.connect.connect_timeout))
        return await run_fresh(self._run.host, options, script, timeout)

    def note(self, event: str, **fields: object) -> None:
        self._run.journal.append({"host": self.host, "step": self._key, "event": event, **fields})
        self._run.journal.flush()  # an action's milestones (a switch started) are on file at once


def overlaps(a: str, b: str) -> bool:
    if a == "/" or b == "/":
        return True
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def stale(probed: str, changed: str, below: bool) -> bool:
    """Whether a change of `changed` (and, if `below`, of what is beneath it) may alter a probe of `probed`."""
    if below:
        return overlaps(probed, changed)
    return probed == "/" or changed == "/" or probed == changed or changed.startswith(probed.rstrip("/") + "/")


class HostRun:
    def __init__(self, plan: HostPlan, settings: RunSettings, journal: Journal, resume: Resume,
                 listener: Listener | None = None) -> None:
        self.plan = plan
        self.host = plan.host
        self.settings = settings
        self.journal = journal
        self.resume = resume
        self.listener = listener
        self.outcome = HostOutcome(plan.host.name)
        self.notified: set[str] = set(resume.notified)
        self.prefetched: dict[int, dict[str, str]] = {}
        self.session: LockSession | None = None  # the lock channel, which runs our scripts
        # steps, then handlers, numbered in one sequence (the journal's step keys)
        offset = len(plan.steps)
        self.steps = list(enumerate(plan.steps))
        self.handlers = [(offset + i, h) for i, h in enumerate(plan.handlers)]
        self.all_steps = self.steps + self.handlers
        self.records: dict[int, StepRecord] = {}
        for key, planned in self.all_steps:
            record = StepRecord(key, planned.name, planned.decl.kind, planned.decl.handler)
            self.records[key] = record
        self.outcome.steps = list(self.records.values())

    # -- the state machine -------------------------------------------------------------------
    def move(self, record: StepRecord, state: State, detail: str = "") -> None:
        check_transition(record.state, state)
        record.state = state
        event: dict[str, object] = {"host": self.host.name, "step": record.key, "name": record.name,
                                    "state": str(state)}
        if detail:
            event["detail"] = detail
        self.journal.append(event)
        if self.listener and state in (State.DONE, State.FAILED, State.SKIPPED, State.BLOCKED):
            self.listener(self.host.name, record)

    # -- the run -----------------------------------------------------------------------------
    async def run(self) -> HostOutcome:
        started = time.monotonic()
        self.journal.append({"host": self.host.name, "event": "host-start"})
        # --timeout bounds the host's ordinary work; a NixOS switch brings its own bounds on top
        deadline = self.settings.timeout + sum(p.step.extra_time() for _, p in self.all_steps if p.step is not None)
        try:
            async with asyncio.timeout(deadline):
                await self._run()
        except TimeoutError:
            self._stop_everything(f"deadline of {deadline:g}s exceeded")
            self.outcome.status = "unreachable"
            self.outcome.error = f"host deadline of {self.settings.timeout:g}s exceeded"
        except LockBusy as exc:
            self._block([k for k, r in self.records.items() if r.state == State.PENDING and not r.handler])
            self.outcome.status = "failed"
            self.outcome.error = str(exc)
        except Unreachable as exc:
            self._stop_everything(str(exc))
            self.outcome.status = "unreachable"
            self.outcome.error = str(exc)
        except BadAnswer as exc:  # nothing in the answer is believed: what was in flight failed
            why = f"the node's answer was not well formed: {exc}"
            self._stop_everything(why)
            self.outcome.status = "failed"
            self.outcome.error = why
        except asyncio.CancelledError:
            self.outcome.status = "interrupted"
            self.outcome.error = "interrupted"
            self.outcome.elapsed = time.monotonic() - started
            self.journal.append({"host": self.host.name, "event": "host-end", "status": "interrupted"})
            raise
        self.outcome.elapsed = time.monotonic() - started
        self.journal.append({"host": self.host.name, "event": "host-end", "status": self.outcome.status,
                             **({"error": self.outcome.error} if self.outcome.error else {})})
        self.journal.sync()  # a finished host is on disk even if the machine loses power next
        return self.outcome

    def _stop_everything(self, why: str) -> None:
        """Steps cut off by a lost host: the one in flight fails, the rest stay pending (resumable)."""
        for record in self.records.values():
            if record.state in (State.DRIFTED, State.APPLIED, State.PROBED):
                self.move(record, State.FAILED, why)
                record.error = why

    async def _run(self) -> None:
        for key, planned in self.all_steps:
            record = self.records[key]
            if key in self.resume.done:
                record.state = State.DONE
                record.summary = "done in an earlier attempt of this run"
            elif planned.step is None and planned.resolve is None and not planned.decl.handler:
                record.summary = planned.skip_reason or "skipped"
                self.move(record, State.SKIPPED, record.summary)
        with self._timed("connect"):
            conn = await connect(self.host, self.settings.connect)
        async with conn:
            first = self._todo(self.steps)
            deferred = any(p.resolve is not None for _, p in self.all_steps)
            if deferred:
                first.append((FACTS_KEY, FactsProbe({}, Where("facts", 0))))
            with self._timed("probe"):
                if self.settings.check:
                    lock, observed = None, (await self._probe(conn, first) if deferred else None)
                else:
                    lock, observed = await self._lock(conn, first)
            try:
                if deferred and observed is not None:
                    with self._timed("probe"):
                        await self._resolve(conn, observed)
                if await self._process(conn, self.steps, observed, main=True) and \
                        not any(r.state == State.FAILED for r in self.records.values()):
                    await self._run_handlers(conn)
                self._finish_status()
                if self.plan.gate and not self.settings.check:
                    with self._timed("gate"):
                        await self._gate(conn)
            finally:
                if lock is not None:
                    await self._release()

    def _timed(self, phase: str) -> _Timer:
        return _Timer(self.outcome.timings, phase)

    async def _resolve(self, conn: asyncssh.SSHClientConnection, observed: dict[int, dict[str, str]]) -> None:
        """Render the steps that waited for facts, then probe them (one more round trip)."""
        facts = parse_facts(observed.pop(FACTS_KEY, {}))
        self.journal.append({"host": self.host.name, "event": "facts", "facts": facts})
        for items in (self.steps, self.handlers):
            for position, (key, planned) in enumerate(items):
                if planned.resolve is None:
                    continue
                try:
                    resolved = planned.resolve(facts)
                    if resolved.step is not None:  # e.g. nix-instantiate: off the event loop
                        await asyncio.to_thread(validate_steps, [(self.host.name, resolved.step)])
                except BadInput as exc:
                    record = self.records[key]
                    record.error = str(exc)
                    if record.state == State.PENDING:
                        self.move(record, State.FAILED, record.error)
                    resolved = PlannedStep(planned.decl, None, "failed to render")
                    if not planned.decl.handler:  # like a failed apply: what follows does not run
                        self._block([k for k, _ in self.steps if k > key])
                items[position] = (key, resolved)
                self.all_steps[[k for k, _ in self.all_steps].index(key)] = (key, resolved)
                record = self.records[key]
                if resolved.step is None and record.state == State.PENDING and not planned.decl.handler:
                    record.summary = resolved.skip_reason or "skipped"
                    self.move(record, State.SKIPPED, record.summary)
        todo = [(k, p.step) for k, p in self.steps if p.step is not None and k not in observed
                and k not in self.resume.done and self.records[k].state == State.PENDING]
        if todo:
            observed.update(await self._probe(conn, todo))

    async def _gate(self, conn: asyncssh.SSHClientConnection) -> None:
        """The wave's health checks on this host; over a fresh connection if a switch cut the run's."""
        if conn.is_closed():
            try:
                async with await connect(self.host, self.settings.connect) as fresh:
                    problem = await run_gate(fresh, self.plan.gate, lambda script: run(fresh, script))
            except Unreachable as exc:
                problem = f"no connection for the gate: {exc}"
        else:
            problem = await run_gate(conn, self.plan.gate, lambda script: self._sh(conn, script))
        self.outcome.gate = problem or "passed"
        self.journal.append({"host": self.host.name, "event": "gate", "result": self.outcome.gate})
        if problem:
            if self.outcome.status in SUCCESSES:
                self.outcome.status = "unhealthy"
                self.outcome.error = f"gate: {problem}"
            else:
                self.outcome.error += f" (gate: {problem})"

    async def _run_handlers(self, conn: asyncssh.SSHClientConnection) -> None:
        """Handlers notified by a change run once, in the order they are declared."""
        notified = [(k, p) for k, p in self.handlers if p.name in self.notified]
        for key, planned in self.handlers:
            if planned.name not in self.notified and key not in self.resume.done:
                self.move(self.records[key], State.SKIPPED, "not notified")
        todo = self._todo(notified)
        prefetched = self.prefetched if all(k in self.prefetched for k, _ in todo) else None
        await self._process(conn, notified, prefetched)

    def _finish_status(self) -> None:
        records = self.records.values()
        failed = [r for r in records if r.state == State.FAILED]
        if failed:
            self.outcome.status = next((r.status for r in failed if r.status), "failed")
            self.outcome.error = f"{failed[0].name}: {failed[0].error}"
        elif any(r.status == "reboot-required" for r in records):
            self.outcome.status = "reboot-required"
            self.outcome.error = next(r.error for r in records if r.status == "reboot-required")
        elif any(r.changed for r in records):
            self.outcome.status = "changed"
        else:
            self.outcome.status = "ok"

    def _todo(self, items: Sequence[tuple[int, PlannedStep]]) -> list[tuple[int, Step]]:
        return [(k, p.step) for k, p in items if p.step is not None and k not in self.resume.done
                and self.records[k].state == State.PENDING]

    async def _process(self, conn: asyncssh.SSHClientConnection, items: Sequence[tuple[int, PlannedStep]],
                       observed: dict[int, dict[str, str]] | None = None, *, main: bool = False) -> bool:
        """Probe (unless already done), decide, and apply in batches.

        A flush forced by staleness re-probes what follows in the same script, and the last flush
        of the main steps probes the handlers it is about to notify: one round trip each.
        """
        todo = self._todo(items)
        if not todo:
            return True
        if observed is None:
            observed = await self._probe(conn, todo)
        batch: list[tuple[int, Step, Change]] = []
        dirty: list[tuple[str, bool]] = []  # (path changed by the batch, whether beneath it may change)
        check_dirty: list[str] = []  # --check: paths earlier steps would change
        barrier = False
        for position, (key, step) in enumerate(todo):
            record = self.records[key]
            if batch and (barrier or isinstance(step, ActionStep)
                          or any(stale(p, d, below) for p in step.reads() for d, below in dirty)):
                handlers = self._handler_probes(batch) if main else []
                ok, fresh = await self._flush(conn, batch, [*todo[position:], *handlers])
                if not ok:
                    self._block([k for k, _ in todo[position:]])
                    return False
                batch, dirty, barrier = [], [], False
                observed.update(fresh)
                self.prefetched = {k: fresh[k] for k, _ in handlers if k in fresh}  # valid until the next change
            self.move(record, State.PROBED)
            decision = step.decide(observed.get(key, {}))
            if self.settings.check and isinstance(step, ActionStep) and isinstance(decision, NoChange):
                # its probe saw the node before the changes this check run only reports
                upstream = [d for d in check_dirty for r in step.reads() if overlaps(r, d)]
                if upstream:
                    decision = Change(f"{step.kind} {step.target()}: would run, {upstream[0]} would change first",
                                      EMPTY)
            if isinstance(decision, NoChange):
                record.summary = decision.reason
                self.move(record, State.SATISFIED, decision.reason)
                self.move(record, State.DONE)
                continue
            record.summary = decision.summary
            record.diff = decision.diff
            self.move(record, State.DRIFTED, decision.summary)
            if self.settings.check:
                check_dirty.extend(step.touches())
                record.changed = True
                self._notify(key)
                self.move(record, State.DONE, "check mode: not changed")
                continue
            if isinstance(step, ActionStep) and not decision.script:  # the batch is empty: it touches "/"
                self.prefetched = {}  # the action may change what the handlers probed
                if not await self._act(conn, key, step, decision):
                    self._block([k for k, _ in todo[position + 1:]])
                    return False
                rest = todo[position + 1:]  # the switch may have changed anything they probed
                if rest:
                    observed.update(await self._probe(conn, rest))
                continue
            batch.append((key, step, decision))
            dirty.extend((path, step.touches_below()) for path in step.touches())
            barrier = barrier or step.barrier
        if not batch:
            return True
        ok, self.prefetched = await self._flush(conn, batch, self._handler_probes(batch) if main else ())
        return ok

    async def _act(self, conn: asyncssh.SSHClientConnection, key: int, step: ActionStep, change: Change) -> bool:
        record = self.records[key]
        with self._timed("action"):
            result = await step.execute(change, Actions(self, conn, key))
        for phase, seconds in result.timings.items():
            self.outcome.timings[phase] = self.outcome.timings.get(phase, 0.0) + seconds
        record.status = result.status
        if not result.ok:
            record.error = result.error
            record.summary = result.summary
            self.move(record, State.FAILED, f"{result.status or 'failed'}: {result.error}")
            return False
        record.summary = result.summary
        record.error = result.error
        record.changed = True
        self._notify(key)
        self.move(record, State.APPLIED, result.summary)
        self.move(record, State.VERIFIED)
        self.move(record, State.DONE)
        return True

    def _handler_probes(self, batch: Sequence[tuple[int, Step, Change]]) -> list[tuple[int, Step]]:
        """Handlers that will run if this batch succeeds: probed with it, not after it."""
        names = set(self.notified)
        for key, _, _ in batch:
            names.update(self.all_steps[key][1].decl.notify)
        return self._todo([(k, p) for k, p in self.handlers if p.name in names])

    def _notify(self, key: int) -> None:
        planned = self.all_steps[key][1]
        for name in planned.decl.notify:
            if name not in self.notified:
                self.notified.add(name)
                self.journal.append({"host": self.host.name, "step": key, "event": "notify", "handler": name})

    def _block(self, keys: Sequence[int]) -> None:
        for key in keys:
            record = self.records[key]
            if record.state in (State.PENDING, State.DRIFTED):
                self.move(record, State.BLOCKED, "an earlier step failed")

    async def _sh(self, conn: asyncssh.SSHClientConnection, script: Sh) -> Answer:
        """Run a script: on the lock session when the run holds the lock (no new SSH session per round trip),
        else on a channel of its own (--check takes no lock; a switch may have ended the session)."""
        self.journal.flush()  # what was done so far is on file before more is done
        if self.session is None or not self.session.alive:
            return await run(conn, script)
        return await self.session.run(script)

    async def _probe(self, conn: asyncssh.SSHClientConnection, todo: Sequence[tuple[int, Step]]
                     ) -> dict[int, dict[str, str]]:
        if not any(remote.needs_probe(step) for _, step in todo):
            return {key: {} for key, _ in todo}  # nothing to read: no round trip
        result = await self._sh(conn, remote.probe_script(todo))
        if result.rc is None:
            raise Unreachable(f"connection lost while probing ({result.signal or 'no exit status'})")
        if result.rc != 0:
            raise Unreachable(f"probe script failed with exit {result.rc}: {shown(result.err[-300:])}")
        return remote.parse_probe(result.records(), todo)

    async def _flush(self, conn: asyncssh.SSHClientConnection, batch: Sequence[tuple[int, Step, Change]],
                     reprobe: Sequence[tuple[int, Step]] = ()) -> tuple[bool, dict[int, dict[str, str]]]:
        """Apply and verify a batch; when it all succeeds, also probe `reprobe` (same round trip)."""
        with self._timed("apply"):
            result = await self._sh(conn, remote.apply_script(batch, reprobe))
        if result.rc is None:  # the remote shell died with the connection or the node
            raise Unreachable(f"connection lost while applying ({result.signal or 'no exit status'})")
        records = result.records()
        results = remote.parse_apply(records, batch)
        ok = True
        for key, step, _change in batch:
            record = self.records[key]
            outcome = results.get(key)
            if not ok or outcome is None or outcome.rc is None:
                if ok:  # the script died before reaching this step
                    record.error = f"apply did not complete (exit {result.rc}): {shown(result.err[-300:])}"
                    self.move(record, State.FAILED, record.error)
                    ok = False
                else:
                    self.move(record, State.BLOCKED, "an earlier step failed")
                continue
            if outcome.rc != 0:
                record.error = shown(tail(outcome.output)) or f"exit {outcome.rc}"
                self.move(record, State.FAILED, f"exit {outcome.rc}: {record.error}")
                ok = False
                continue
            self.move(record, State.APPLIED)
            problem = step.verify(outcome.observed, outcome.output)
            if problem:
                record.error = problem
                self.move(record, State.FAILED, problem)
                ok = False
                continue
            record.changed = True
            self._notify(key)
            self.move(record, State.VERIFIED)
            self.move(record, State.DONE)
        return ok, (remote.parse_probe(records, reprobe) if ok else {})

    # -- the host lock and the marker --------------------------------------------------------
    async def _lock(self, conn: asyncssh.SSHClientConnection, todo: Sequence[tuple[int, Step]]
                    ) -> tuple[LockSession, dict[int, dict[str, str]]]:
        """Take the host lock and probe `todo` under it, in one round trip."""
        owner = f"run {self.settings.run_id} from {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
        self.journal.flush()
        try:
            session, probed = await LockSession.open(conn, wait=self.settings.lock_timeout, owner=owner,
                                                     first=remote.probe_script(todo))
        except LockBusy as exc:
            for record in self.records.values():
                if record.state == State.PENDING and not record.handler:
                    record.error = str(exc)
                    self.move(record, State.FAILED, str(exc))
                    break
            raise
        self.journal.append({"host": self.host.name, "event": "locked"})
        self.session = session
        if probed.rc is None:
            raise Unreachable(f"connection lost while probing ({probed.signal or 'no exit status'})")
        if probed.rc != 0:
            raise Unreachable(f"probe script failed with exit {probed.rc}: {shown(probed.err[-300:])}")
        return session, remote.parse_probe(probed.records(), todo)

    async def _release(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            await session.close({"run_id": self.settings.run_id, "playbook": self.settings.playbook,
                                 "outcome": self.outcome.status, "finished": str(int(time.time()))})


def tail(text: str, lines: int = 8) -> str:
    return "\n".join(text.strip(" \t\r\n").split("\n")[-lines:])  # str.strip() would take \x1c-\x1f too


class _Timer:
    """Adds the seconds spent in a `with` block to timings[phase]."""

    def __init__(self, timings: dict[str, float], phase: str) -> None:
        self.timings = timings
        self.phase = phase

    def __enter__(self) -> None:
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.phase] = self.timings.get(self.phase, 0.0) + time.monotonic() - self.started
