"""Credentials sealed per node (age, to the node's pinned host key): seal, push, list, verify, rotate."""

from __future__ import annotations

import getpass
import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from zetactl.cli.common import FormatOpt, InventoryOpt, LimitOpt, check_format, err, inventory_path
from zetactl.errors import BadInput, ExitCode
from zetactl.fileio import write_atomic
from zetactl.inventory import load_inventory, select_hosts
from zetactl.report import print_json, print_recap
from zetactl.secret import Secret
from zetactl.tables import tabulate

NameArg = Annotated[str, typer.Argument(help="Credential name, e.g. gh-token.")]
FromFileOpt = Annotated[Path | None, typer.Option("--from-file", help="Read the value from this file (exact "
                                                  "bytes). Values are never taken from the command line.")]
StdinOpt = Annotated[bool, typer.Option("--stdin", help="Read the value from standard input.")]
SerialOpt = Annotated[list[str] | None, typer.Option("--serial", help="Push in waves: N, P% or a ramp '1,10%'.")]


def read_value(from_file: Path | None, stdin: bool, name: str) -> Secret:
    """The value from a file, stdin, or a terminal prompt (twice); never from argv or the environment."""
    if from_file is not None and stdin:
        raise BadInput("give --from-file or --stdin, not both")
    if from_file is not None:
        try:
            data = from_file.read_bytes()
        except OSError as exc:
            raise BadInput(f"--from-file {from_file}: {exc.strerror}") from None
    elif stdin:
        data = sys.stdin.buffer.read()
    elif sys.stdin.isatty():
        first = getpass.getpass(f"value of {name}: ")
        if getpass.getpass(f"value of {name} (again): ") != first:
            raise BadInput("the two values differ")
        data = first.encode()
    else:
        raise BadInput("no value: use --from-file FILE, --stdin, or run on a terminal to be prompted")
    if not data:
        raise BadInput("the value is empty")
    return Secret(data)


def parse_expiry(text: str) -> int:
    """'90d', '12h', '30m', 'never' -> unix seconds of not-after (0: never)."""
    if text == "never":
        return 0
    match = re.fullmatch(r"(\d+)([dhm])", text.strip())
    if not match:
        raise BadInput(f"--expires takes a duration like 90d, 12h, 30m, or 'never', not {text!r}")
    seconds = int(match[1]) * {"d": 86400, "h": 3600, "m": 60}[match[2]]
    return int(time.time()) + seconds


def seal(
    name: NameArg,
    hosts: Annotated[str | None, typer.Option("--hosts", help="Host pattern to seal for (default: the hosts "
                                              "that hold the credential).")] = None,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    from_file: FromFileOpt = None,
    stdin: StdinOpt = False,
    path: Annotated[str | None, typer.Option("--path", help="Where the value lands on the node (tmpfs), "
                                             "default /run/zeta/creds/NAME.")] = None,
    mode: Annotated[str | None, typer.Option("--mode", help="Octal, default 0400.")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Default root.")] = None,
    group: Annotated[str | None, typer.Option("--group", help="Default root.")] = None,
    unit: Annotated[list[str] | None, typer.Option("--unit", help="Unit to restart when the value changes "
                                                   "(repeat).")] = None,
    expires: Annotated[str, typer.Option("--expires", help="Lifetime: 90d, 12h, 30m or never.")] = "90d",
    recovery: Annotated[list[str] | None, typer.Option("--recovery-recipient", help="Also seal to this age "
                                                       "or ssh-ed25519 public key (operator recovery).")] = None,
) -> None:
    """Seal a new generation of NAME for each host (to its pinned host key); push it with `creds push`.

    Example: zetactl creds seal gh-token --hosts control_plane --from-file ./gh-token --unit zeta-otto
    """
    from zetactl.creds import store
    from zetactl.creds.areas import TOKEN_NAME_PREFIX
    from zetactl.creds.envelope import check_name, check_target

    check_name(name)
    if name.startswith(TOKEN_NAME_PREFIX):
        raise BadInput(f"credential names starting with {TOKEN_NAME_PREFIX!r} are kept for tenants' hub tokens "
                       "(zetactl tenant add|rotate)")
    inv = load_inventory(inventory_path(inventory))
    previous = store.load(name) if name in store.names() else None
    if hosts is None and previous is None:
        raise BadInput(f"{name} is new: say which hosts get it with --hosts PATTERN")
    # a new generation goes to every host that holds the credential (plus the ones named): sealing
    # for a subset would leave the others on a generation no longer recorded
    names = sorted(set(select_hosts(inv, hosts, origin="--hosts") if hosts else ())
                   | set(previous.hosts if previous else ()))
    missing = [n for n in names if n not in inv.hosts]
    if missing:
        raise BadInput(f"hosts not in {inv.path}: {', '.join(missing)}")
    base = previous.target if previous else store.Target(path=f"/run/zeta/creds/{name}")
    target = store.Target(path=path or base.path, mode=(mode or base.mode).rjust(4, "0"), owner=owner or base.owner,
                          group=group or base.group, units=tuple(unit) if unit is not None else base.units)
    check_target(target.path, target.mode, target.owner, target.group, target.units)
    for other in store.names():
        held = store.load(other)
        if other != name and held.target.path == target.path and set(held.hosts) & set(names):
            raise BadInput(f"credential path {target.path} is already used by credential {other!r} on "
                           f"{', '.join(sorted(set(held.hosts) & set(names)))}: each credential has a path of its own")
    value = read_value(from_file, stdin, name)
    record = store.seal_for_hosts(name, value, [inv.host(n) for n in names], target,
                                  not_after=parse_expiry(expires), recovery=tuple(recovery or ()), previous=previous)
    err(f"sealed {name} generation {record.generation} for {len(record.hosts)} host(s) "
        f"(not pushed yet: zetactl creds push {name})")


def _deploy(playbook: Path, inventory: Path | None, limit: str | None, *, check: bool = False, diff: bool = False,
            serial: list[str] | None = None, progress: bool = True) -> Any:
    from zetactl.deploy import DeployRequest, deploy
    from zetactl.engine.fleet import FleetSettings
    from zetactl.plan import Selection

    serial_items = tuple(s for v in serial or [] for s in v.split(",") if s.strip())
    request = DeployRequest(playbook=playbook, inventory=inventory_path(inventory), selection=Selection(limit=limit),
                            check=check, diff=diff, fleet=FleetSettings(serial=serial_items,
                                                                        max_fail="100%" if serial_items else None))
    return deploy(request, progress=progress)


def _finish(result: Any, output_format: str, *, check: bool = False, diff: bool = False) -> int:
    from zetactl.report import exit_code, json_document

    if output_format == "json":
        print_json(sys.stdout, json_document(result.run.run_id, result.outcomes, check=check,
                                             interrupted=result.interrupted, elapsed=result.elapsed))
    else:
        print_recap(sys.stdout, result.run.run_id, result.outcomes, check=check, diff=diff, elapsed=result.elapsed)
    return int(exit_code(result.outcomes, result.interrupted))


def push(
    names: Annotated[list[str] | None, typer.Argument(help="Credentials to push (default: all).")] = None,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: LimitOpt = None,
    check: Annotated[bool, typer.Option("--check", help="Show what would be installed; change nothing.")] = False,
    diff: Annotated[bool, typer.Option("--diff", help="Show generations and short digests (never values).")] = False,
    serial: SerialOpt = None,
    output_format: FormatOpt = "table",
) -> None:
    """Install each host's sealed credentials that it does not have yet (compared by digest).

    Example: zetactl creds push gh-token -i inventory/hosts.yml --diff
    """
    from zetactl.creds import store
    from zetactl.creds.push import playbook_for

    check_format(output_format)
    chosen = names or store.names()
    result = _deploy(playbook_for(chosen), inventory, limit, check=check, diff=diff, serial=serial,
                     progress=output_format == "table")
    code = _finish(result, output_format, check=check, diff=diff)
    if code == 0 and not check and not limit:
        for name in chosen:
            _mark_complete(name, result)
    raise typer.Exit(code)


def _mark_complete(name: str, result: Any) -> None:
    from zetactl.creds import store

    record = store.load(name)
    if record.state == "pending" and all(result.outcomes.get(h) and result.outcomes[h].status in ("ok", "changed")
                                         for h in record.hosts):
        record.state = "complete"
        store.save(record)


def rotate(
    name: NameArg,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    from_file: FromFileOpt = None,
    stdin: StdinOpt = False,
    expires: Annotated[str, typer.Option("--expires", help="Lifetime of the new value.")] = "90d",
    serial: SerialOpt = None,
    output_format: FormatOpt = "table",
) -> None:
    """New value to every host that holds NAME, verified, then the old generation retired.

    Make-before-break: each host keeps its previous generation until the new one is installed and
    verified everywhere it could be; hosts that could not be reached keep the old value, the exit code
    says so, and running `creds rotate NAME` again (no new value) finishes them without touching the rest.

    Example: zetactl creds rotate gh-token --from-file ./new-token
    """
    from zetactl.creds import store
    from zetactl.creds.envelope import VERSION
    from zetactl.creds.push import playbook_for

    check_format(output_format)
    record = store.load(name)
    if from_file is not None or stdin or (record.state == "complete" and sys.stdin.isatty()):
        inv = load_inventory(inventory_path(inventory))
        value = read_value(from_file, stdin, name)
        missing = [h for h in record.hosts if h not in inv.hosts]
        if missing:
            raise BadInput(f"{name} is held by hosts no longer in {inv.path}: {', '.join(missing)}")
        record = store.seal_for_hosts(name, value, [inv.host(h) for h in sorted(record.hosts)], record.target,
                                      not_after=parse_expiry(expires), previous=record)
        err(f"sealed {name} generation {record.generation} for {len(record.hosts)} host(s)")
    elif record.format != VERSION:
        record.check_envelope_format()  # an older format: only a new value (resealed) can go out
    elif record.state == "complete":
        raise BadInput(f"{name} generation {record.generation} is already everywhere: give the new value "
                       "(--from-file, --stdin, or a terminal)")
    else:
        err(f"continuing the rotation of {name} to generation {record.generation}")
    installed = _deploy(playbook_for([name]), inventory, None, serial=serial, progress=output_format == "table")
    done = sorted(h for h, o in installed.outcomes.items() if o.status in ("ok", "changed"))
    code = _finish(installed, output_format)
    if done:  # verified on these (the step re-probes after installing): their old generation can go
        retired = _deploy(playbook_for([name], retire=True), inventory, ":".join(done), progress=False)
        code = max(code, _finish(retired, output_format)) if output_format == "table" else code
    _mark_complete(name, installed)
    left = sorted(set(record.hosts) - set(done))
    if left:
        err(f"{name}: {len(left)} host(s) still on an older generation: {', '.join(left)}; "
            f"run `zetactl creds rotate {name}` again when they are back")
    raise typer.Exit(code)


def verify(
    names: Annotated[list[str] | None, typer.Argument(help="Credentials to verify (default: all).")] = None,
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    limit: LimitOpt = None,
    warn_days: Annotated[int, typer.Option("--warn-days", help="Flag credentials expiring within this many "
                                           "days.")] = 14,
    output_format: FormatOpt = "table",
) -> None:
    """Check that each host has its credentials: present, right generation, owner and mode, not expired.

    Exit 0 when all hold, 2 when one does not, 3 when a host could not be reached.

    Example: zetactl creds verify -i inventory/hosts.yml
    """
    from zetactl.creds import store
    from zetactl.creds.push import playbook_for

    check_format(output_format)
    chosen = names or store.names()
    result = _deploy(playbook_for(chosen), inventory, limit, check=True, progress=False)
    code = _finish(result, output_format, check=True)
    drift = any(o.count("changed") for o in result.outcomes.values())
    if output_format == "table":  # what differs, and why (a value changed on the node, a generation behind)
        for host, outcome in sorted(result.outcomes.items()):
            for step in outcome.steps:
                if step.changed:
                    sys.stdout.write(f"{host}: {step.summary}\n")
    soon = [(n, store.load(n).not_after) for n in chosen]
    for name, not_after in soon:
        if not_after and not_after - time.time() < warn_days * 86400:
            when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(not_after))
            err(f"{name}: expires {when}" + (" (EXPIRED)" if not_after < time.time() else ""))
            drift = True
    if drift and code == 0:
        code = int(ExitCode.FAILED)
    raise typer.Exit(code)


def list_(
    inventory: InventoryOpt = None,  # type: ignore[assignment]
    live: Annotated[bool, typer.Option("--live", help="Also read each node's markers over SSH.")] = False,
    output_format: FormatOpt = "table",
) -> None:
    """Which generation of which credential is on which host (records; with --live, the nodes' markers).

    Example: zetactl creds list --live -i inventory/hosts.yml
    """
    from zetactl.creds import store

    check_format(output_format)
    records = [store.load(n) for n in store.names()]
    for record in records:
        try:
            record.check_envelope_format()
        except BadInput as exc:  # listed all the same: what is on the nodes still matters
            err(f"warning: {exc.message}")
    markers: dict[str, dict[str, str]] = {}
    if live and records:
        markers = _live_markers(inventory, sorted({h for r in records for h in r.hosts}), [r.name for r in records])
    rows: list[dict[str, Any]] = []
    for record in records:
        for host in sorted(record.hosts):
            row: dict[str, Any] = {"name": record.name, "host": host, "generation": record.generation,
                                   "state": record.state, "path": record.target.path,
                                   "expires": record.not_after or None}
            if live:
                row["on_node"] = markers.get(host, {}).get(record.name, "unreachable" if host not in markers
                                                           else "absent")
            rows.append(row)
    if output_format == "json":
        print_json(sys.stdout, {"credentials": rows})
        return
    table = [[r["name"], r["host"], r["generation"], r["state"], r["path"],
              time.strftime("%Y-%m-%d", time.gmtime(r["expires"])) if r["expires"] else "never",
              *([r["on_node"]] if live else [])] for r in rows]
    headers = ["name", "host", "generation", "state", "path", "expires", *(["on node"] if live else [])]
    sys.stdout.write(tabulate(table, headers=headers) + "\n")


def _live_markers(inventory: Path | None, hosts: list[str], names: list[str]) -> dict[str, dict[str, str]]:
    """host -> credential -> `generation N`, from each node's markers (what is not there is left out)."""
    import asyncio

    from zetactl.adhoc import run_command
    from zetactl.remote import BadAnswer, Sh, lines, sh, source
    from zetactl.remote.frame import fields
    from zetactl.steps.credential import NODE_STATE
    from zetactl.transport import ConnectOptions

    inv = load_inventory(inventory_path(inventory))
    script = lines(source("health.sh"), *(sh(Sh("zh_file"), f"m{index}", f"{NODE_STATE}/{name}.meta")
                                          for index, name in enumerate(names)))
    results = asyncio.run(run_command([inv.host(h) for h in hosts if h in inv.hosts], script, forks=100,
                                      timeout=30, options=ConnectOptions()))
    found: dict[str, dict[str, str]] = {}
    for r in results:
        if r.status == "unreachable" or r.answer is None:
            continue
        try:
            records = r.answer.records()
            found[r.host] = {name: f"generation {fields(records.text(f'm{index}'), name).get('generation', '?')}"
                             for index, name in enumerate(names) if f"m{index}" in records}
        except BadAnswer as exc:
            err(f"warning: {r.host}: the node's answer was not well formed: {exc}")
    return found


PassFdOpt = Annotated[int | None, typer.Option("--passphrase-fd", help="Read the passphrase from this open file "
                                               "descriptor (e.g. 3 with `3< file`).")]
PassFileOpt = Annotated[Path | None, typer.Option("--passphrase-file", help="Read the passphrase from a file of "
                                                  "mode 0600 or stricter.")]


def read_passphrase(fd: int | None, file: Path | None, *, confirm: bool) -> Secret:
    """The passphrase from a descriptor, a 0600 file, or the terminal; never argv or the environment."""
    from zetactl.creds.envelope import read_passphrase_file

    if fd is not None and file is not None:
        raise BadInput("give --passphrase-fd or --passphrase-file, not both")
    if file is not None:
        try:
            return read_passphrase_file(str(file))
        except FileNotFoundError:
            raise BadInput(f"--passphrase-file {file}: no such file") from None
    if fd is not None:
        try:
            with os.fdopen(os.dup(fd), "rb") as fh:
                data = fh.read().rstrip(b"\r\n")
        except OSError as exc:
            raise BadInput(f"--passphrase-fd {fd}: {exc.strerror}") from None
        if not data:
            raise BadInput(f"--passphrase-fd {fd}: empty passphrase")
        return Secret(data)
    if not sys.stdin.isatty():
        raise BadInput("no passphrase: use --passphrase-fd N, --passphrase-file FILE (0600), or a terminal")
    first = getpass.getpass("passphrase: ")
    if confirm and getpass.getpass("passphrase (again): ") != first:
        raise BadInput("the two passphrases differ")
    if len(first) < 8:
        raise BadInput("a passphrase has at least 8 characters")
    return Secret(first)


def seal_blob(
    name: NameArg,
    usb_id: Annotated[str, typer.Option("--usb-id", help="The boot USB's id (e.g. its filesystem UUID): the "
                                        "blob opens only for it.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the blob (mode 0600).")],
    from_file: FromFileOpt = None,
    stdin: StdinOpt = False,
    passphrase_fd: PassFdOpt = None,
    passphrase_file: PassFileOpt = None,
    path: Annotated[str | None, typer.Option("--path", help="Where the value is restored (tmpfs).")] = None,
    mode: Annotated[str, typer.Option("--mode")] = "0400",
    expires: Annotated[str, typer.Option("--expires", help="Lifetime: 90d, 12h, 30m or never.")] = "never",
) -> None:
    """Seal NAME with a passphrase (age scrypt) for a boot USB, bound to the USB's id.

    Example: zetactl creds seal-blob k3s-token --usb-id 2F1A-77C0 --out /mnt/usb/zeta/k3s-token.age \\
             --from-file ./k3s-token --passphrase-fd 3 3< ./passphrase
    """
    from zetactl.creds.envelope import make_header, seal_passphrase

    if stdin and passphrase_fd == 0:
        raise BadInput("the value and the passphrase cannot both come from stdin")
    value = read_value(from_file, stdin, name)
    passphrase = read_passphrase(passphrase_fd, passphrase_file, confirm=True)
    header = make_header(f"usb:{usb_id}", name, 1, value, not_after=parse_expiry(expires),
                         path=path or f"/run/zeta/creds/{name}", mode=mode)
    write_atomic(out, seal_passphrase(header, value, passphrase), 0o600)
    err(f"sealed {name} for USB {usb_id} with a passphrase: {out}")


def open_blob(
    blob: Annotated[Path, typer.Argument(help="A blob made by `creds seal-blob`.")],
    usb_id: Annotated[str, typer.Option("--usb-id", help="This USB's id: a blob for another USB is refused.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the value (mode from the blob, 0600 at "
                                      "most); use a tmpfs path.")],
    name: Annotated[str | None, typer.Option("--name", help="Refuse a blob holding another credential.")] = None,
    passphrase_fd: PassFdOpt = None,
    passphrase_file: PassFileOpt = None,
) -> None:
    """Open a passphrase blob (the boot-time restore): check its USB id, name and expiry, write the value.

    Example: zetactl creds open-blob /mnt/usb/zeta/k3s-token.age --usb-id 2F1A-77C0 --out /run/zeta/creds/k3s-token
    """
    from zetactl.creds.envelope import EnvelopeError, OldFormat, open_passphrase

    try:
        data = blob.read_bytes()
    except OSError as exc:
        raise BadInput(f"{blob}: {exc.strerror}") from None
    passphrase = read_passphrase(passphrase_fd, passphrase_file, confirm=False)
    try:
        header, value = open_passphrase(data, passphrase)
    except OldFormat:
        raise BadInput(f"{blob}: refused: blob format v1, sealed by an older zetactl (its header is not bound to "
                       "its digest): seal it again with `zetactl creds seal-blob NAME --usb-id ID --out "
                       f"{blob} --from-file FILE`") from None
    except EnvelopeError as exc:
        raise BadInput(f"{blob}: refused: {exc}") from None
    if header.node != f"usb:{usb_id}":
        raise BadInput(f"{blob}: refused: sealed for {header.node}, not usb:{usb_id}")
    if name is not None and header.name != name:
        raise BadInput(f"{blob}: refused: holds credential {header.name!r}, not {name!r}")
    if header.not_after and header.not_after < time.time():
        expired = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(header.not_after))
        raise BadInput(f"{blob}: refused: expired at {expired}")
    write_atomic(out, value.reveal(), int(header.mode, 8) & 0o600 or 0o400)  # mkstemp: 0600 until then
    err(f"restored {header.name} (generation {header.generation}) to {out}")


COMMANDS = {"seal": seal, "push": push, "rotate": rotate, "verify": verify, "list": list_,
            "seal-blob": seal_blob, "open-blob": open_blob}
