"""Render a playbook for one host: variables (with their precedence), `when`, values, templates.

Variable precedence, lowest first (the only place it is written):
    1. the playbook's `vars:` (defaults)
    2. the inventory: group `all` < other groups (parents before children) < the host
    3. `-e NAME=VALUE` on the command line
plus the magic names inventory_hostname, group_names, groups and playbook_dir.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment

from zetactl.errors import BadInput
from zetactl.facts import FACTS_PENDING, FactsPending, NeedsFacts
from zetactl.inventory import Host, Inventory
from zetactl.playbook.model import Playbook, StepDecl
from zetactl.remote import names, quote
from zetactl.steps import KINDS, Step, Where

WHOLE_EXPRESSION = re.compile(r"^\{\{((?:(?!\{\{|\}\}).)*)\}\}\Z", re.S)  # "{{ x }}" exactly: x keeps its type
MAX_RENDERED = 64 * 1024 * 1024  # bytes one value or one template may render to
MAX_HOST_PAYLOAD = 256 * 1024 * 1024  # bytes of rendered files one host may get from one playbook


class TooLarge(jinja2.TemplateError):
    """A rendering that would pass MAX_RENDERED: stopped before it is made."""


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, with `*` and `**` bounded: `{{ 'x' * 10**10 }}` is refused before it is made
    (the sandbox already bounds `range`)."""

    intercepted_binops = frozenset(["*", "**"])

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int) and abs(right) > 4096 and not isinstance(left, float):
            raise TooLarge(f"{left!r:.20} ** {right} is too large a number")
        if operator == "*":
            for sequence, times in ((left, right), (right, left)):
                if isinstance(sequence, str | bytes | list | tuple) and isinstance(times, int) \
                        and len(sequence) * times > MAX_RENDERED:
                    raise TooLarge(f"a value repeated {times} times would be more than {MAX_RENDERED // 2**20} MiB")
        return super().call_binop(context, operator, left, right)


def rendered(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """The template's output, stopped once it passes MAX_RENDERED (a template looping into gigabytes)."""
    parts: list[str] = []
    size = 0
    for part in template.generate(context):
        size += len(part)
        if size > MAX_RENDERED:
            raise TooLarge(f"renders to more than {MAX_RENDERED // 2**20} MiB")
        parts.append(part)
    return "".join(parts)


class Renderer:
    def __init__(self, playbook: Playbook, inventory: Inventory, extra_vars: Mapping[str, Any],
                 *, want_content: bool = False) -> None:
        self.playbook = playbook
        self.inventory = inventory
        self.extra_vars = dict(extra_vars)
        self.want_content = want_content
        base = playbook.path.parent
        self.env = _Sandbox(
            undefined=jinja2.StrictUndefined,
            loader=jinja2.FileSystemLoader([str(base), str(base / "templates")]),
            keep_trailing_newline=True,
            autoescape=False,
        )
        self.env.filters.update(nix=to_nix, combine=combine, quote=lambda v: quote(str(v)).text,
                                basename=lambda p: str(p).rstrip("/").rsplit("/", 1)[-1])
        self._compiled: dict[str, jinja2.Template] = {}
        self._sent: dict[str, int] = {}  # host -> bytes of rendered files (MAX_HOST_PAYLOAD)
        self._files: dict[str, Path] = {}  # `source:`/`src:` -> the file it names
        self._expressions: dict[str, Any] = {}
        self._groups = {name: inventory.group_hosts(name) for name in inventory.groups}

    # -- variables ---------------------------------------------------------------------------
    def variables(self, host: Host, facts: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The host's variables; `facts` is FACTS_PENDING until the host's facts are gathered."""
        layers: list[Mapping[str, Any]] = [self.playbook.vars, host.vars, self.extra_vars]
        merged: dict[str, Any] = {}
        for layer in layers:
            merged.update(layer)
        merged.update(
            inventory_hostname=host.name,
            group_names=[g for g in host.groups if g not in ("all", "ungrouped")],
            groups=self._groups,
            playbook_dir=str(self.playbook.path.parent),
            facts=FACTS_PENDING if facts is None else facts,
        )
        # Variables may refer to other variables: resolve a few levels, like Ansible does lazily.
        for _ in range(4):
            pending = {k: v for k, v in merged.items() if isinstance(v, str) and "{" in v}
            if not pending:
                break
            for key, value in pending.items():
                try:
                    merged[key] = rendered(self._template(value), merged)
                except jinja2.UndefinedError:
                    continue  # may resolve on a later pass, or fail where it is used
                except NeedsFacts:
                    merged[key] = FACTS_PENDING  # a step that uses it waits for the host's facts
                except jinja2.TemplateError as exc:
                    raise BadInput(f"variable {key!r}: {exc}") from None
                except Exception as exc:  # Python's own error ('a' + 1): bad input, never a traceback
                    raise BadInput(f"variable {key!r}: {python_error(exc, False)} (host {host.name})") from None
        return merged

    # -- values ------------------------------------------------------------------------------
    def _template(self, text: str) -> jinja2.Template:
        compiled = self._compiled.get(text)
        if compiled is None:
            compiled = self.env.from_string(text)
            self._compiled[text] = compiled
        return compiled

    def _expression(self, text: str) -> Any:
        """A compiled expression, once per run (compiling is most of the cost of rendering a fleet)."""
        compiled = self._expressions.get(text)
        if compiled is None:
            compiled = self.env.compile_expression(text, undefined_to_none=False)
            self._expressions[text] = compiled
        return compiled

    def render_value(self, value: Any, context: Mapping[str, Any], where: Where, host: str, *,
                     sensitive: bool = False) -> Any:
        """`sensitive`: the value belongs to a step that keeps its content secret (`sensitive: true`)."""
        if isinstance(value, str):
            if "{" not in value:
                return value
            try:
                whole = WHOLE_EXPRESSION.match(value)
                if whole:  # "{{ x }}" alone keeps x's type (a bool stays a bool)
                    result = self._expression(whole.group(1))(**context)
                    if isinstance(result, jinja2.Undefined):
                        str(result)  # raises UndefinedError with the variable's name
                    if isinstance(result, FactsPending):
                        raise NeedsFacts
                    return result
                return rendered(self._template(value), context)
            except jinja2.UndefinedError as exc:
                raise where.error(f"undefined variable: {exc.message} (host {host})") from None
            except jinja2.TemplateSyntaxError as exc:
                raise where.error(f"template syntax error: {exc.message}") from None
            except jinja2.TemplateError as exc:
                raise where.error(f"template error: {exc} (host {host})") from None
            except NeedsFacts:
                raise
            except Exception as exc:  # Python's own error inside an expression ('a' + 1, a filter given text)
                raise where.error(f"template error: {python_error(exc, sensitive)} (host {host})") from None
        if isinstance(value, list):
            return [self.render_value(v, context, where, host, sensitive=sensitive) for v in value]
        if isinstance(value, dict):
            return {k: self.render_value(v, context, where, host, sensitive=sensitive) for k, v in value.items()}
        return value

    def when(self, decl: StepDecl, context: Mapping[str, Any], host: str) -> bool:
        if decl.when is None:
            return True
        try:
            expression = self._expression(decl.when)
            return bool(expression(**context))
        except jinja2.UndefinedError as exc:
            raise decl.at("when").error(f"when: undefined variable: {exc.message} (host {host})") from None
        except jinja2.TemplateError as exc:
            raise decl.at("when").error(f"when: {exc}") from None
        except NeedsFacts:
            raise
        except Exception as exc:  # Python's own error inside the expression: bad input, never a traceback
            raise decl.at("when").error(f"when: {python_error(exc, bool(decl.args.get('sensitive')))} "
                                        f"(host {host})") from None

    def payload(self, step_cls: type[Step], args: Mapping[str, Any], context: Mapping[str, Any],
                where: Where, host: str) -> bytes | None:
        option = step_cls.payload_option
        ref = args.get(option) if option else None
        if not isinstance(ref, str):
            return None
        base = self.playbook.path.parent
        source = self._files.get(ref)  # found once per run, not once per host (resolve() walks every folder)
        if source is None:
            source = self._files[ref] = playbook_file(base, ref, f"{step_cls.kind}: {option}", where)
        if not step_cls.payload_is_template:
            size = source.stat().st_size
            if size > MAX_RENDERED:
                raise where.error(f"{step_cls.kind}: {option} {names.show(ref)} is {size / 2**20:.0f} MiB; a file "
                                  f"zetactl sends is at most {MAX_RENDERED // 2**20} MiB")
            return source.read_bytes()
        try:
            template = self.env.get_template(source.relative_to(base).as_posix())
            return rendered(template, context).encode()
        except jinja2.TemplateSyntaxError as exc:
            raise BadInput(f"template syntax error: {exc.message}", file=str(source), line=exc.lineno) from None
        except jinja2.UndefinedError as exc:
            line = _template_line(sys.exc_info()[2], source)
            raise BadInput(f"undefined variable: {exc.message} (host {host}, step at {where.file}:{where.line})",
                           file=str(source), line=line) from None
        except jinja2.TemplateError as exc:
            raise BadInput(f"template error: {exc} (host {host})", file=str(source)) from None
        except NeedsFacts:
            raise
        except Exception as exc:  # never a traceback: it would print the template's line, secret or not
            line = _template_line(sys.exc_info()[2], source)
            raise BadInput(f"template error: {python_error(exc, bool(args.get('sensitive')))} (host {host}, "
                           f"step at {where.file}:{where.line})", file=str(source), line=line) from None

    # -- steps -------------------------------------------------------------------------------
    def build(self, decl: StepDecl, context: Mapping[str, Any], host: str) -> Step:
        step_cls = KINDS[decl.kind]
        args = self.render_value(dict(decl.args), context, decl.where, host,
                                 sensitive=bool(decl.args.get("sensitive")))
        step_cls.precheck(args, decl.where)
        payload = self.payload(step_cls, args, context, decl.where, host)
        if payload is not None:
            self._sent[host] = self._sent.get(host, 0) + len(payload)
            if self._sent[host] > MAX_HOST_PAYLOAD:
                raise decl.where.error(f"host {host} would get more than {MAX_HOST_PAYLOAD // 2**20} MiB of files "
                                       "from this playbook (loops over large templates?)")
        return step_cls(args, decl.where, want_content=self.want_content, payload=payload, host=host)


def playbook_file(base: Path, ref: str, what: str, where: Where) -> Path:
    """A file a step names (`source:`, `src:`): next to the playbook or in its templates/ folder, and never
    outside that folder (`../../etc/shadow`, `/root/.ssh/id_ed25519`, a link leading out), as Ansible's role
    files are. BadInput at the step's line otherwise."""
    root = base.resolve()
    way_out = (f"put the file next to the playbook ({base}) or in its templates/ folder, or give the content "
               "inline (content:)")
    if "\0" in ref:
        raise where.error(f"{what} {names.show(ref)} is not a file name")
    for candidate in (base / ref, base / "templates" / ref):
        try:
            resolved = candidate.resolve()
            found = resolved.is_file()
        except (OSError, RuntimeError):  # a loop of links, a name too long
            continue
        if found and not resolved.is_relative_to(root):
            raise where.error(f"{what} {names.show(ref)} is outside the playbook's folder: {way_out}")
        if found:
            return candidate
    raise where.error(f"{what} {names.show(ref)} not found next to the playbook: {way_out}")


def python_error(exc: Exception, sensitive: bool) -> str:
    """A Python error raised while rendering: its type, and its message unless the step is sensitive (a
    message can quote a value: "could not convert string to float: '...'")."""
    if sensitive:
        return f"{type(exc).__name__} (its message is not shown: the step is sensitive)"
    return f"{type(exc).__name__}: {exc}"


def _template_line(tb: TracebackType | None, source: Path) -> int | None:
    line = None
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename) == source or tb.tb_frame.f_code.co_filename == str(source):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


NIX_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_'-]*")
NIX_KEYWORDS = frozenset({"assert", "else", "if", "in", "inherit", "let", "rec", "then", "with"})


def to_nix(value: Any) -> str:
    """The `nix` filter: a value as a Nix literal ({{ name | nix }} -> "otto", escaped; lists, sets)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise jinja2.TemplateError(f"nix: {value} has no Nix literal")
        mantissa, e, exponent = repr(value).partition("e")
        return (mantissa if "." in mantissa else mantissa + ".0") + (e + exponent if e else "")
    if isinstance(value, list | tuple):
        # a negative number in a list needs parentheses: [ -2 ] is a syntax error, [ (-2) ] is not
        items = [f"({to_nix(v)})" if isinstance(v, int | float) and not isinstance(v, bool) and v < 0
                 else to_nix(v) for v in value]
        return "[ " + " ".join(items) + " ]" if items else "[ ]"
    if isinstance(value, Mapping):
        pairs = " ".join(f"{k if NIX_NAME.fullmatch(str(k)) and str(k) not in NIX_KEYWORDS else to_nix(str(k))} = "
                         f"{to_nix(v)};" for k, v in value.items())
        return "{ " + pairs + " }" if pairs else "{ }"
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return '"' + text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r") + '"'


def combine(*mappings: Mapping[str, Any]) -> dict[str, Any]:
    """The `combine` filter (as in Ansible): later mappings override earlier ones, shallowly."""
    merged: dict[str, Any] = {}
    for mapping in mappings:
        if not isinstance(mapping, Mapping):
            raise jinja2.TemplateError(f"combine: expected mappings, got {type(mapping).__name__}")
        merged.update(mapping)
    return merged
