"""zetactl lab: the NixOS layer shared by nixos-rebuild, switch-to-configuration, nix-env and systemd-run.

Stdlib only: it runs inside every lab node (from /usr/local/sbin) and on the controller (layout.py seeds
generation 1 with `build`). A node's configuration is /etc/nixos/configuration.nix and the files it imports
(`imports = [ ./x.nix ./dir ];`, a directory meaning dir/default.nix; a default.nix using `builtins.readDir`
imports every other `*.nix` file of its directory). See docs/lab.md, "The lab's NixOS layer".
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NIXOS_VERSION = "25.05.20250102.6df2492"
NIXOS_CODENAME = "Warbler"
KERNEL_VERSION = "6.6.68"
NIX_BASE32 = "0123456789abcdfghijklmnpqrsvwxyz"
INIT_INTERFACE = "systemd"
FLAGS_FILE = "zeta-lab-flags"  # in a toplevel: one marker per line (break-network, slow-activation=5, ...)
PROFILE = "/nix/var/nix/profiles/system"
UNITS_STATE = "/run/zeta-lab/units"
JOURNAL = "/var/log/zeta-lab/journal"
SLEEP = "/bin/sleep infinity"
BASE_UNITS = {"sshd.service": ("OpenSSH Daemon", "/bin/sleep infinity"),
              "nix-daemon.service": ("Nix Daemon", "/bin/sleep infinity")}
SYSTEMD_VERSION = "257.5"
SYSTEMD_TOOLS = ("systemctl", "systemd-run", "journalctl")  # <toplevel>/systemd/bin: links to the lab's stand-ins
LAB_BIN = "/usr/local/sbin"
MARKER = re.compile(r"zeta-lab:\s*(break-network|activation-fails|new-init|slow-activation=\d+(?:\.\d+)?)")


def store_hash(seed: str) -> str:
    digest = hashlib.sha256(seed.encode()).digest()
    return "".join(NIX_BASE32[b % 32] for b in digest[:32])


# -- a tolerant Nix reader ---------------------------------------------------------------------------
@dataclass
class Tok:
    kind: str  # id, str, num, path, op
    text: str
    interp: bool = False  # a string with ${...}


@dataclass
class Expr:
    """A value the reader does not evaluate (a function call, a reference, a string with `${...}`)."""
    text: str
    string: bool = False  # a string with an interpolation (text is the string, `${...}` left as written)


_ID = re.compile(r"[A-Za-z_][A-Za-z0-9_'\-]*")
_NUM = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_PATH = re.compile(r"(?:\.{0,2}|~)/[A-Za-z0-9._+\-/]*")
_ESC = {"n": "\n", "t": "\t", "r": "\r"}


def _interp_end(src: str, i: int) -> int:
    """Index just past the `}` closing an interpolation whose `${` ends before i."""
    depth = 1
    while i < len(src) and depth:
        c = src[i]
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
        elif c == '"':
            i += 1
            while i < len(src) and src[i] != '"':
                i += 2 if src[i] == "\\" else 1
        i += 1
    return i


def tokenize(src: str) -> tuple[list[Tok], list[str]]:
    """Tokens and comment texts. Never raises: an unterminated string ends the file."""
    toks: list[Tok] = []
    comments: list[str] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c.isspace():
            i += 1
        elif c == "#":
            j = src.find("\n", i)
            j = n if j < 0 else j
            comments.append(src[i + 1:j])
            i = j
        elif src.startswith("/*", i):
            j = src.find("*/", i + 2)
            j = n if j < 0 else j
            comments.append(src[i + 2:j])
            i = j + 2
        elif c == '"':
            i += 1
            out: list[str] = []
            interp = False
            while i < n and src[i] != '"':
                if src[i] == "\\" and i + 1 < n:
                    out.append(_ESC.get(src[i + 1], src[i + 1]))
                    i += 2
                elif src.startswith("${", i):
                    j = _interp_end(src, i + 2)
                    out.append(src[i:j])
                    interp = True
                    i = j
                else:
                    out.append(src[i])
                    i += 1
            toks.append(Tok("str", "".join(out), interp))
            i += 1
        elif src.startswith("''", i):
            i += 2
            out = []
            interp = False
            while i < n:
                if src.startswith("'''", i):
                    out.append("''")
                    i += 3
                elif src.startswith("''$", i):
                    out.append("$")
                    i += 3
                elif src.startswith("''\\", i) and i + 3 < n:
                    out.append(_ESC.get(src[i + 3], src[i + 3]))
                    i += 4
                elif src.startswith("''", i):
                    i += 2
                    break
                elif src.startswith("${", i):
                    j = _interp_end(src, i + 2)
                    out.append(src[i:j])
                    interp = True
                    i = j
                else:
                    out.append(src[i])
                    i += 1
            toks.append(Tok("str", _dedent("".join(out)), interp))
        elif (m := _PATH.match(src, i)) and len(m.group()) > 1 and src[i] in "./~":
            toks.append(Tok("path", m.group()))
            i = m.end()
        elif m := _ID.match(src, i):
            toks.append(Tok("id", m.group()))
            i = m.end()
        elif c.isdigit():
            m2 = _NUM.match(src, i)
            text = m2.group() if m2 else c
            toks.append(Tok("num", text))
            i += len(text)
        elif src.startswith("${", i):  # dynamic attribute name: keep as an opaque op
            j = _interp_end(src, i + 2)
            toks.append(Tok("op", src[i:j]))
            i = j
        else:
            toks.append(Tok("op", c))
            i += 1
    return toks, comments


def _dedent(text: str) -> str:
    lines = text.split("\n")
    if lines and not lines[0].strip():
        lines = lines[1:]
    widths = [len(ln) - len(ln.lstrip(" ")) for ln in lines if ln.strip()]
    cut = min(widths) if widths else 0
    return "\n".join(ln[cut:] for ln in lines)


_CLOSE = {"{": "}", "[": "]", "(": ")"}


class Reader:
    """Recursive descent over what module files use; whatever it does not understand becomes an Expr."""

    def __init__(self, toks: list[Tok]) -> None:
        self.toks = toks
        self.i = 0

    def peek(self, k: int = 0) -> Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def is_op(self, text: str, k: int = 0) -> bool:
        t = self.peek(k)
        return t is not None and t.kind == "op" and t.text == text

    def skip_balanced(self) -> None:
        """Skip one token, or a whole bracketed group when it opens one."""
        t = self.peek()
        if t is None:
            return
        self.i += 1
        if t.kind == "op" and t.text in _CLOSE:
            depth = 1
            while self.i < len(self.toks) and depth:
                u = self.toks[self.i]
                if u.kind == "op" and u.text in _CLOSE:
                    depth += 1
                elif u.kind == "op" and u.text in ("}", "]", ")"):
                    depth -= 1
                self.i += 1

    def skip_to_semicolon(self) -> None:
        while self.i < len(self.toks) and not self.is_op(";") and not self.is_op("}"):
            self.skip_balanced()

    def attrpath(self) -> list[str] | None:
        parts: list[str] = []
        while True:
            t = self.peek()
            if t is None or t.kind not in ("id", "str"):
                return None
            parts.append(t.text)
            self.i += 1
            if not self.is_op("."):
                return parts
            self.i += 1

    def attrset(self) -> dict[str, Any]:
        """After `{`: bindings up to the matching `}` (consumed)."""
        out: dict[str, Any] = {}
        while self.i < len(self.toks):
            if self.is_op("}"):
                self.i += 1
                return out
            start = self.i
            path = self.attrpath()
            if path is not None and self.is_op("="):
                self.i += 1
                value = self.value()
                set_path(out, path, value)
                if not self.is_op(";"):
                    self.skip_to_semicolon()
            else:
                self.i = max(self.i, start + 1) if path is None else self.i
                self.skip_to_semicolon()
            if self.is_op(";"):
                self.i += 1
        return out

    def value(self) -> Any:
        t = self.peek()
        if t is None:
            return Expr("")
        single = self.is_op(";", 1) or self.is_op("]", 1) or self.is_op("}", 1)
        if t.kind == "op" and t.text == "{":
            self.i += 1
            result: Any = self.attrset()
            return result if self.is_op(";") or self.is_op("]") else self._rest(result)
        if t.kind == "op" and t.text == "[":
            self.i += 1
            items: list[Any] = []
            while self.i < len(self.toks) and not self.is_op("]"):
                u = self.peek()
                assert u is not None
                if u.kind == "op" and u.text in ("{", "["):
                    items.append(self.value())
                    continue
                if u.kind == "str":
                    items.append(Expr(u.text, True) if u.interp else u.text)
                elif u.kind == "num":
                    items.append(int(u.text) if u.text.lstrip("-").isdigit() else float(u.text))
                else:
                    items.append(Expr(u.text))
                self.skip_balanced()
            self.i += 1
            return items if self.is_op(";") else self._rest(items)
        nxt = self.peek(1)
        if (t.kind == "op" and t.text == "-" and nxt is not None and nxt.kind == "num"
                and (self.is_op(";", 2) or self.is_op("]", 2) or self.is_op("}", 2))):
            self.i += 2
            return -int(nxt.text) if nxt.text.isdigit() else -float(nxt.text)
        if single:
            self.i += 1
            if t.kind == "str":
                return Expr(t.text, True) if t.interp else t.text
            if t.kind == "num":
                return int(t.text) if t.text.lstrip("-").isdigit() else float(t.text)
            if t.kind == "id" and t.text in ("true", "false"):
                return t.text == "true"
            if t.kind == "id" and t.text == "null":
                return None
            return Expr(t.text)
        return self._rest(None)

    def _rest(self, _first: Any) -> Any:
        """An expression up to `;`. When it ends with an attribute set (`lib.mkIf cond { ... }`,
        `lib.mkDefault { ... }`), that set is its value; otherwise an Expr."""
        start = self.i
        last_group = -1
        while self.i < len(self.toks) and not self.is_op(";") and not self.is_op("}"):
            last_group = self.i if self.is_op("{") else -1
            self.skip_balanced()
        end = self.i
        if last_group > start or (last_group == start and _first is None):
            sub = Reader(self.toks[last_group + 1:end])
            return sub.attrset()
        return Expr(" ".join(t.text for t in self.toks[start:end]))


def set_path(target: dict[str, Any], path: list[str], value: Any) -> None:
    for key in path[:-1]:
        nxt = target.get(key)
        if not isinstance(nxt, dict):
            nxt = {}
            target[key] = nxt
        target = nxt
    merge_into(target, path[-1], value)


def merge_into(target: dict[str, Any], key: str, value: Any) -> None:
    old = target.get(key)
    if isinstance(old, dict) and isinstance(value, dict):
        for k, v in value.items():
            merge_into(old, k, v)
    elif isinstance(old, list) and isinstance(value, list):
        target[key] = old + value
    else:
        target[key] = value


def _at(toks: list[Tok], i: int, prefix: tuple[str, ...]) -> bool:
    """An option path starting at token i (`systemd.services`, `services`), not inside a longer path such as
    `config.services.k3s.enable`."""
    if i > 0 and toks[i - 1].kind == "op" and toks[i - 1].text == ".":
        return False
    for k, part in enumerate(prefix):
        j = i + 2 * k
        if j >= len(toks) or toks[j].kind != "id" or toks[j].text != part:
            return False
        if k and (toks[j - 1].kind != "op" or toks[j - 1].text != "."):
            return False
    return True


def _definitions(toks: list[Tok], prefix: tuple[str, ...]) -> dict[str, dict[str, Any]]:
    """Every `PREFIX.NAME = { ... };`, `PREFIX.NAME.OPTION = value;` and `PREFIX = { NAME = ...; };` of a module,
    merged by NAME."""
    found: dict[str, dict[str, Any]] = {}
    i = 0
    while i < len(toks):
        if not _at(toks, i, prefix):
            i += 1
            continue
        reader = Reader(toks)
        reader.i = i + 2 * len(prefix) - 1
        name: str | None = None
        if reader.is_op("."):
            reader.i += 1
            path = reader.attrpath()
            if path is None:
                i += 1
                continue
            name, rest = path[0], path[1:]
        else:
            rest = []
        if not reader.is_op("="):
            i += 1
            continue
        reader.i += 1
        value = reader.value()
        if name is None:
            if isinstance(value, dict):
                for key, svc in value.items():
                    if isinstance(svc, dict):
                        merge_into(found, key, svc)
        else:
            block: dict[str, Any] = {}
            if rest:
                set_path(block, rest, value)
            elif isinstance(value, dict):
                block = value
            else:
                i = reader.i
                continue
            merge_into(found, name, block)
        i = max(reader.i, i + 1)
    return found


@dataclass
class Module:
    """What the lab reads in one module file."""
    services: dict[str, dict[str, Any]]  # systemd.services.NAME
    options: dict[str, dict[str, Any]]  # services.NAME (NixOS service options: services.k3s.enable, ...)
    markers: list[str]


def module_of(src: str) -> Module:
    toks, comments = tokenize(src)
    markers = [m.group(1) for c in comments for m in MARKER.finditer(c)]
    return Module(_definitions(toks, ("systemd", "services")), _definitions(toks, ("services",)), markers)


def services_of(src: str) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The `systemd.services.NAME = { ... };` blocks of one module (and `systemd.services = { NAME = ...; }`)
    plus the lab fault markers found in its comments."""
    module = module_of(src)
    return module.services, module.markers


def option_services(options: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The systemd services NixOS modules declare for enabled service options (nixpkgs' k3s module for
    `services.k3s.enable = true;`). Their program is not in the lab: ExecStart is the long-running stand-in."""
    out: dict[str, dict[str, Any]] = {}
    k3s = options.get("k3s")
    if isinstance(k3s, dict) and k3s.get("enable") is True:
        agent = k3s.get("role") == "agent"
        out["k3s"] = {
            "description": "Lightweight Kubernetes",
            "wantedBy": ["multi-user.target"],
            "after": ["firewall.service", "network-online.target"],
            "wants": ["firewall.service", "network-online.target"],
            "serviceConfig": {"Type": "exec" if agent else "notify", "KillMode": "process", "Delegate": "yes",
                              "Restart": "always", "RestartSec": "5s", "LimitNOFILE": 1048576,
                              "LimitNPROC": "infinity", "LimitCORE": "infinity", "TasksMax": "infinity",
                              "TimeoutStartSec": 0},
        }
    return out


# -- units ---------------------------------------------------------------------------------------
def _render(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        parts = [_render(v) for v in value]
        return " ".join(p for p in parts if p is not None)
    return None


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str)]
    return []


def unit_text(name: str, svc: dict[str, Any]) -> str:
    """The unit file NixOS would write for `systemd.services.NAME` (ExecStart made runnable in the lab)."""
    unit: list[str] = []
    desc = svc.get("description")
    if isinstance(desc, Expr) and desc.string:
        desc = desc.text
    unit.append(f"Description={desc if isinstance(desc, str) else name}")
    for key, option in (("After", "after"), ("Wants", "wants"), ("Requires", "requires"), ("Before", "before")):
        values = _strings(svc.get(option))
        if values:
            unit.append(f"{key}={' '.join(values)}")
    extra = svc.get("unitConfig")
    if isinstance(extra, dict):
        for key, value in sorted(extra.items()):
            text = _render(value)
            if text is not None:
                unit.append(f"{key}={text}")
    service: list[str] = []
    env = svc.get("environment")
    if isinstance(env, dict):
        for key, value in sorted(env.items()):
            text = _render(value)
            if text is not None:
                service.append(f'Environment="{key}={text}"')
    config = svc.get("serviceConfig")
    config = config if isinstance(config, dict) else {}
    exec_start = config.get("ExecStart")
    # A plain absolute path is kept; a Nix interpolation, an expression, a script or nothing: a long-running stand-in.
    command = exec_start.strip() if isinstance(exec_start, str) and exec_start.startswith("/") else SLEEP
    service.append(f"ExecStart={command}")
    for key, value in sorted(config.items()):
        if key == "ExecStart":
            continue
        text = _render(value)
        if text is not None and not isinstance(value, Expr):
            service.append(f"{key}={text}")
    wanted = _strings(svc.get("wantedBy"))
    text = "[Unit]\n" + "\n".join(unit) + "\n\n[Service]\n" + "\n".join(service) + "\n"
    if wanted:
        text += f"\n[Install]\nWantedBy={' '.join(wanted)}\n"
    return text


def base_unit(description: str, command: str) -> str:
    return (f"[Unit]\nDescription={description}\n\n[Service]\nExecStart={command}\nRestart=always\n\n"
            "[Install]\nWantedBy=multi-user.target\n")


@dataclass
class Build:
    modules: list[tuple[str, str]]  # (relative path, content), sorted
    hostname: str
    units: dict[str, str] = field(default_factory=dict)  # NAME.service -> unit file text
    flags: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        seed = self.hostname + "\0" + "".join(f"{p}\0{c}\0" for p, c in self.modules)
        return f"{store_hash(seed)}-nixos-system-{self.hostname}-{NIXOS_VERSION}"


class NixError(Exception):
    """A build error, worded as Nix prints it (`error: ...`)."""


CONFIGURATION = "configuration.nix"


def _imports(src: str) -> list[str]:
    """The literal paths of a module's `imports = [ ... ];` lists (elements that are other expressions are
    not evaluated)."""
    toks, _ = tokenize(src)
    out: list[str] = []
    for i in range(len(toks)):
        if not (_at(toks, i, ("imports",)) and i + 2 < len(toks) and toks[i + 1].text == "="
                and toks[i + 2].kind == "op" and toks[i + 2].text == "["):
            continue
        depth = 0
        for u in toks[i + 2:]:
            if u.kind == "op" and u.text in _CLOSE:
                depth += 1
            elif u.kind == "op" and u.text in ("}", "]", ")"):
                depth -= 1
                if depth == 0:
                    break
            elif depth == 1 and u.kind == "path":
                out.append(u.text)
    return out


def _reads_dir(src: str) -> bool:
    toks, _ = tokenize(src)
    return any(toks[i].text == "builtins" and toks[i + 1].text == "." and toks[i + 2].text == "readDir"
               for i in range(len(toks) - 2))


def read_modules(nixos_dir: Path, shown: str = "/etc/nixos") -> list[tuple[str, str]]:
    """The files a build of `shown`/configuration.nix reaches, as (path relative to `shown`, content) sorted by
    path: configuration.nix and, transitively, its `imports` (`./x.nix`; `./dir` is dir/default.nix). A
    default.nix using `builtins.readDir` imports every other `*.nix` file of its directory (the lab's
    approximation of the "import every file in this folder" idiom). Files not reached are not read, as in Nix.
    `nixos_dir` is where `shown` (the path the node sees) is read from. Raises NixError for a missing import;
    returns [] when there is no configuration.nix."""
    root = os.path.normpath(shown)

    def real(path: str) -> Path:
        return nixos_dir / os.path.relpath(path, root)

    first = f"{root}/{CONFIGURATION}"
    if not real(first).is_file():
        return []
    seen: dict[str, str] = {}
    todo = [first]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        if not real(path).exists():
            raise NixError(f"error: getting status of '{path}': No such file or directory")
        if real(path).is_dir():
            todo.append(f"{path}/default.nix")
            continue
        src = real(path).read_text(errors="replace")
        seen[path] = src
        base = os.path.dirname(path)
        for imp in _imports(src):
            if imp.startswith("~"):
                continue
            todo.append(os.path.normpath(imp if imp.startswith("/") else os.path.join(base, imp)))
        if os.path.basename(path) == "default.nix" and _reads_dir(src):
            directory = real(base)
            todo.extend(f"{base}/{p.name}" for p in sorted(directory.iterdir())
                        if p.name.endswith(".nix") and p.name != "default.nix" and p.is_file())
    return sorted((os.path.relpath(path, root), src) for path, src in seen.items())


def evaluate(modules: list[tuple[str, str]], hostname: str) -> Build:
    build = Build(modules, hostname)
    services: dict[str, dict[str, Any]] = {}
    options: dict[str, dict[str, Any]] = {}
    definitions: list[dict[str, dict[str, Any]]] = []
    for _rel, src in modules:
        module = module_of(src)
        for name, opt in module.options.items():
            merge_into(options, name, opt)
        definitions.append(module.services)
        build.flags.extend(m for m in module.markers if m not in build.flags)
    for name, svc in option_services(options).items():  # what the NixOS module declares, then systemd.services
        merge_into(services, name, svc)
    for found in definitions:
        for name, svc in found.items():
            merge_into(services, name, svc)
    for unit, (description, command) in BASE_UNITS.items():
        build.units[unit] = base_unit(description, command)
    for name, svc in sorted(services.items()):
        if svc.get("enable") is False:
            continue
        unit = name if "." in name else f"{name}.service"
        build.units[unit] = unit_text(name.removesuffix(".service"), svc)
    return build


def _link(path: Path, target: str) -> None:
    if path.is_symlink() or path.exists():
        if path.is_symlink() and os.readlink(path) == target:
            return
        path.unlink()
    path.symlink_to(target)


def _write(path: Path, text: str, mode: int = 0o444) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def realise(build: Build, store: Path) -> str:
    """Write the toplevel into `store` (the node's /nix/store, or its overlay upper dir); returns its path
    as the node sees it. Same inputs, same path: an existing toplevel is left as it is."""
    kernel = f"{store_hash('linux-' + KERNEL_VERSION)}-linux-{KERNEL_VERSION}"
    modules = f"{store_hash('linux-modules-' + KERNEL_VERSION)}-linux-{KERNEL_VERSION}-modules"
    if not (store / kernel / "bzImage").exists():
        _write(store / kernel / "bzImage", "lab kernel\n")
        _write(store / kernel / "initrd", "lab initrd\n")
    if not (store / modules / "lib" / "modules").exists():
        (store / modules / "lib" / "modules" / KERNEL_VERSION).mkdir(parents=True, exist_ok=True)
    systemd = f"{store_hash('systemd-' + SYSTEMD_VERSION)}-systemd-{SYSTEMD_VERSION}"
    if not (store / systemd / "bin" / SYSTEMD_TOOLS[-1]).is_symlink():
        (store / systemd / "bin").mkdir(parents=True, exist_ok=True)
        for tool in SYSTEMD_TOOLS:  # the last one written last: its presence means the path is complete
            _link(store / systemd / "bin" / tool, f"{LAB_BIN}/{tool}")
    top = store / build.name
    if not (top / "nixos-version").exists():
        tmp = store / (build.name + ".tmp-" + str(os.getpid()))
        (tmp / "bin").mkdir(parents=True, exist_ok=True)
        (tmp / "bin" / "switch-to-configuration").symlink_to(f"{LAB_BIN}/switch-to-configuration")
        _link(tmp / "systemd", f"/nix/store/{systemd}")
        _link(tmp / "kernel", f"/nix/store/{kernel}/bzImage")
        _link(tmp / "initrd", f"/nix/store/{kernel}/initrd")
        _link(tmp / "kernel-modules", f"/nix/store/{modules}")
        init = INIT_INTERFACE + ("-zeta-lab-2" if "new-init" in build.flags else "")
        _write(tmp / "init-interface-version", init + "\n")
        _write(tmp / FLAGS_FILE, "".join(f + "\n" for f in build.flags))
        _write(tmp / "configuration-name", build.hostname + "\n")
        for unit, text in build.units.items():
            _write(tmp / "etc" / "systemd" / "system" / unit, text)
        _write(tmp / "nixos-version", NIXOS_VERSION)
        try:
            os.rename(tmp, top)
        except OSError:  # a concurrent build made it first
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return f"/nix/store/{build.name}"


def build_system(nixos_dir: Path, store: Path, hostname: str) -> str:
    return realise(evaluate(read_modules(nixos_dir), hostname), store)


def install_units(toplevel: str, etc_system: Path, store_root: Path) -> tuple[list[str], list[str]]:
    """Point /etc/systemd/system at the generation's units (symlinks into the store, with wants links) and
    drop store links of units it lacks. `store_root` maps /nix/store paths to files here. Returns
    (installed, removed) unit names. Hand-written (non store) unit files are left alone."""
    units_dir = store_root / toplevel.removeprefix("/nix/store/") / "etc" / "systemd" / "system"
    wanted: dict[str, list[str]] = {}
    names = sorted(p.name for p in units_dir.iterdir()) if units_dir.is_dir() else []
    for unit in names:
        text = (units_dir / unit).read_text()
        targets = [t for line in text.splitlines() if line.startswith("WantedBy=") for t in line[9:].split()]
        wanted[unit] = targets
    etc_system.mkdir(parents=True, exist_ok=True)
    removed: list[str] = []
    for path in sorted(etc_system.glob("*")) + sorted(etc_system.glob("*.wants/*")):
        if not path.is_symlink() or not os.readlink(path).startswith("/nix/store/"):
            continue
        if path.parent == etc_system and path.name in wanted:
            continue
        if path.parent != etc_system and path.name in wanted and path.parent.name[:-6] in wanted[path.name]:
            continue
        path.unlink()
        if path.parent == etc_system:
            removed.append(path.name)
    for unit in names:
        target = f"{toplevel}/etc/systemd/system/{unit}"
        dest = etc_system / unit
        if dest.exists() and not dest.is_symlink():
            continue  # a hand-written unit file wins
        _link(dest, target)
        for t in wanted[unit]:
            wants = etc_system / f"{t}.wants"
            wants.mkdir(exist_ok=True)
            _link(wants / unit, target)
    return names, removed


# -- profiles ------------------------------------------------------------------------------------
def generations(profile: str = PROFILE) -> list[tuple[int, str]]:
    """(id, link path) sorted by id."""
    directory, base = os.path.split(profile)
    out: list[tuple[int, str]] = []
    try:
        entries = os.listdir(directory or ".")
    except OSError:
        return []
    for entry in entries:
        if entry.startswith(base + "-") and entry.endswith("-link"):
            middle = entry[len(base) + 1:-5]
            if middle.isdigit():
                out.append((int(middle), os.path.join(directory, entry)))
    return sorted(out)


def current_generation(profile: str = PROFILE) -> int | None:
    try:
        target = os.readlink(profile)
    except OSError:
        return None
    for gen, link in generations(profile):
        if os.path.basename(link) == os.path.basename(target):
            return gen
    return None


def point_profile(profile: str, gen: int) -> None:
    base = os.path.basename(profile)
    tmp = f"{profile}.tmp-{os.getpid()}"
    os.symlink(f"{base}-{gen}-link", tmp)
    os.replace(tmp, profile)


def set_profile(profile: str, path: str) -> int:
    """`nix-env -p PROFILE --set PATH`: reuse the newest generation when it already points at PATH."""
    gens = generations(profile)
    if gens and os.readlink(gens[-1][1]) == path:
        point_profile(profile, gens[-1][0])
        return gens[-1][0]
    gen = gens[-1][0] + 1 if gens else 1
    os.makedirs(os.path.dirname(profile), exist_ok=True)
    link = f"{profile}-{gen}-link"
    os.symlink(path, link)
    point_profile(profile, gen)
    return gen


def generation_date(link: str) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(os.lstat(link).st_mtime))


# -- node-side helpers ---------------------------------------------------------------------------
def journal(unit: str, message: str, ident: str = "nixos") -> None:
    try:
        os.makedirs(JOURNAL, exist_ok=True)
        line = f"{time.strftime('%b %d %H:%M:%S')} {os.uname().nodename} {ident}[{os.getpid()}]: {message}\n"
        with open(f"{JOURNAL}/{unit}.log", "a") as fh:
            fh.write(line)
    except OSError:
        pass


def unit_state(unit: str) -> str:
    try:
        with open(f"{UNITS_STATE}/{unit}") as fh:
            return fh.read().strip() or "inactive"
    except OSError:
        return "inactive"


def set_unit_state(unit: str, state: str, result: tuple[str, int] | None = None) -> None:
    os.makedirs(UNITS_STATE, exist_ok=True)
    tmp = f"{UNITS_STATE}/{unit}.tmp-{os.getpid()}"
    with open(tmp, "w") as fh:
        fh.write(state + "\n")
    os.replace(tmp, f"{UNITS_STATE}/{unit}")
    exec_file = f"{UNITS_STATE}/{unit}.exec"
    if result is None:
        if os.path.exists(exec_file):
            os.unlink(exec_file)
    else:
        with open(exec_file + ".tmp", "w") as fh:
            fh.write(f"{result[0]} {result[1]}\n")
        os.replace(exec_file + ".tmp", exec_file)


def read_flags(toplevel: str) -> list[str]:
    try:
        with open(f"{toplevel}/{FLAGS_FILE}") as fh:
            return [line.strip() for line in fh if line.strip()]
    except OSError:
        return []
