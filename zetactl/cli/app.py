"""zetactl's command line. Every command is thin: parse, call one core function, map the result."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

import typer

from zetactl.cli import agents as agents_cmd
from zetactl.cli import creds as creds_cmd
from zetactl.cli import deploy as deploy_cmd
from zetactl.cli import health as health_cmd
from zetactl.cli import hub as hub_cmd
from zetactl.cli import inventory as inventory_cmd
from zetactl.cli import lab as lab_cmd
from zetactl.cli import node as node_cmd
from zetactl.cli import runs as runs_cmd
from zetactl.cli import tenant as tenant_cmd
from zetactl.cli.common import err
from zetactl.errors import ExitCode, ZetaError

_started = False  # set once a command body runs: a usage error before that exits BAD_INPUT


def guarded(command: Callable[..., Any]) -> Callable[..., Any]:
    """Domain errors become a one-line message and their documented exit code (never a traceback)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        global _started
        _started = True
        try:
            return command(*args, **kwargs)
        except ZetaError as exc:
            err(f"error: {exc}")
            raise typer.Exit(int(exc.exit_code)) from None

    return wrapper


def register(target: typer.Typer, name: str, command: Callable[..., Any]) -> None:
    target.command(name)(guarded(command))


# Pretty tracebacks print local variables, which may hold secrets: never.
app = typer.Typer(
    name="zetactl",
    help="Operate a fleet of NixOS machines over SSH.\n\nExample: zetactl lab up 10 && "
         "zetactl deploy playbooks/site.yml -i ~/.local/state/zetactl/lab/inventory.yml",
    pretty_exceptions_enable=False,
    no_args_is_help=True,
)
register(app, "deploy", deploy_cmd.deploy)
register(app, "plan", deploy_cmd.plan)
register(app, "run", deploy_cmd.run)
register(app, "health", health_cmd.health)
for module, name in ((inventory_cmd, "inventory"), (runs_cmd, "runs"), (lab_cmd, "lab"), (node_cmd, "node"),
                     (agents_cmd, "agents"), (creds_cmd, "creds"), (tenant_cmd, "tenant"), (hub_cmd, "hub")):
    group = typer.Typer(help=module.__doc__, no_args_is_help=True)
    for command_name, command in module.COMMANDS.items():
        register(group, command_name, command)
    app.add_typer(group, name=name)


def setup_logging() -> None:
    """ZETACTL_LOG=debug|info|warning turns on logging (asyncssh's too) to stderr or ZETACTL_LOG_FILE.

    Every handler gets the secret-redacting filter; secrets never reach a log line by design
    (they travel as file content or stdin only), the filter is the backstop.
    """
    import logging
    import os

    from zetactl.secret import install_redaction

    level = os.environ.get("ZETACTL_LOG", "").upper()
    if level:
        if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            err(f"ZETACTL_LOG: expected debug, info, warning or error, not {level.lower()!r}")
            sys.exit(ExitCode.BAD_INPUT)
        file = os.environ.get("ZETACTL_LOG_FILE")
        handler: logging.Handler = logging.FileHandler(file) if file else logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        logging.basicConfig(level=level, handlers=[handler])
        logging.getLogger("asyncssh").setLevel(level)
    install_redaction()


def main() -> None:
    setup_logging()
    try:
        app()
    except SystemExit as exc:
        if exc.code == 2 and not _started:  # typer's usage errors exit 2, which means "failed" here
            sys.exit(ExitCode.BAD_INPUT)
        raise
