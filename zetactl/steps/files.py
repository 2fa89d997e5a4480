"""Filesystem step kinds: directory, file, template, line_in_file, symlink."""

from __future__ import annotations

import base64
import difflib
import hashlib
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from zetactl.errors import BadInput
from zetactl.remote import EMPTY, Sh, cat, fail, lines, names, sh, shown
from zetactl.steps.base import (
    Change,
    Decision,
    NoChange,
    Observed,
    Option,
    Step,
    Where,
    attributes_drift,
    attributes_script,
    normalize_mode,
    temp_name,
    write_file_script,
)

PATH = Option((str,), required=True, help="absolute path on the node")
MODE = Option((str, int), help="octal mode, e.g. '0644'")
OWNER = Option((str,), help="user name")
GROUP = Option((str,), help="group name")
STATE = Option((str,), default="present", choices=("present", "absent"))
DIFF_LIMIT = 256 * 1024
EDIT_LIMIT = 16 * 1024 * 1024  # line_in_file edits files up to this size


def content(observed: Observed, limit: int) -> bytes | None:
    """The file's bytes `zp_content` read, or None when it read none or more than `limit` (too large)."""
    if "content" not in observed:
        return None
    data = base64.b64decode(observed["content"])
    return data if len(data) <= limit else None


class PathStep(Step):
    """Common to steps that manage one absolute path with optional mode/owner/group."""

    def setup(self) -> None:
        try:
            path = names.path(self.args["path"], f"{self.kind}: path")
            for key in ("owner", "group"):
                if self.args.get(key) is not None:
                    names.account(self.args[key], f"{self.kind}: {key}")
        except BadInput as exc:
            raise self.where.error(exc.message) from None
        if path.rstrip("/") == "":
            raise self.where.error(f"{self.kind}: path must not be / itself")
        self.args["path"] = path.rstrip("/")
        if "mode" in self.options:
            self.args["mode"] = normalize_mode(self.args.get("mode"), self.where, self.kind)

    @property
    def path(self) -> str:
        return str(self.args["path"])

    def probe_path(self) -> tuple[str, bool] | None:
        return (self.path, False)

    def probe_script(self) -> Sh:
        return EMPTY

    def _absent(self, observed: Observed) -> Decision:
        if observed.get("type") == "absent":
            return NoChange(f"{self.path} is absent")
        return Change(f"remove {self.path}", sh(Sh("rm -rf --"), self.path))


class Directory(PathStep):
    kind: ClassVar[str] = "directory"
    options: ClassVar[dict[str, Option]] = {"path": PATH, "mode": MODE, "owner": OWNER, "group": GROUP,
                                            "state": STATE}

    def touches_below(self) -> bool:
        return bool(self.args["state"] == "absent")  # creating or chmod-ing a directory leaves its contents alone

    def decide(self, observed: Observed) -> Decision:
        a = self.args
        if a["state"] == "absent":
            return self._absent(observed)
        kind = observed.get("type")
        if kind == "absent":  # mkdir -m sets the mode of the last directory (no chmod process)
            made = sh(Sh("mkdir -p -m"), a["mode"], Sh("--"), self.path) if a["mode"] else \
                sh(Sh("mkdir -p --"), self.path)
            script = lines(made, attributes_script(self.path, None, a["owner"], a["group"]))
            return Change(f"create directory {self.path}", script)
        if kind != "directory":
            return Change(f"{self.path} is a {kind}, not a directory",
                          fail(f"{self.path} exists and is not a directory"))
        drift = attributes_drift(observed, a["mode"], a["owner"], a["group"])
        if drift:
            return Change(", ".join(drift), attributes_script(self.path, a["mode"], a["owner"], a["group"]))
        return NoChange(f"directory {self.path} exists with the wanted attributes")


class File(PathStep):
    """A file with given content (inline `content`, or `source`: a file next to the playbook)."""

    kind: ClassVar[str] = "file"
    payload_option: ClassVar[str | None] = "source"
    options: ClassVar[dict[str, Option]] = {
        "path": PATH, "content": Option((str,)), "source": Option((str,)), "mode": MODE, "owner": OWNER,
        "group": GROUP, "state": STATE, "sensitive": Option((bool,), default=False),
    }

    @classmethod
    def precheck(cls, args: Mapping[str, Any], where: Where) -> None:
        both_or_neither = (args.get("content") is None) == (args.get("source") is None)
        if cls.kind == "file" and args.get("state", "present") == "present" and both_or_neither:
            raise where.error("file: give exactly one of 'content' or 'source'")

    def setup(self) -> None:
        super().setup()
        self.precheck(self.args, self.where)
        if self.args.get("content") is not None:
            try:
                names.unicode(self.args["content"], f"{self.kind}: content")
            except BadInput as exc:
                raise self.where.error(exc.message) from None
        self.data: bytes = self.content_bytes()

    def content_bytes(self) -> bytes:
        if self.payload is not None:  # `source`, read by the renderer
            return self.payload
        return str(self.args.get("content") or "").encode()

    def probe_path(self) -> tuple[str, bool] | None:
        return (self.path, True)

    def probe_script(self) -> Sh:
        if self.want_content and not self.args["sensitive"]:
            return sh(Sh("zp_content"), self.path, DIFF_LIMIT)
        return EMPTY

    def decide(self, observed: Observed) -> Decision:
        a = self.args
        if a["state"] == "absent":
            return self._absent(observed)
        kind = observed.get("type")
        if kind not in ("absent", "file"):
            return Change(f"{self.path} is a {kind}, not a file",
                          fail(f"{self.path} exists and is not a regular file"))
        wanted_sha = hashlib.sha256(self.data).hexdigest()
        if kind == "absent" or observed.get("sha256", "").split(" ")[0] != wanted_sha:
            verb = "create" if kind == "absent" else "update"
            script = write_file_script(self.path, self.data, a["mode"], a["owner"], a["group"],
                                       exists=kind != "absent")
            diff = self._diff(observed) if self.want_content else None  # only --diff shows it
            return Change(f"{verb} {self.path} ({len(self.data)} bytes)", script, diff)
        drift = attributes_drift(observed, a["mode"], a["owner"], a["group"])
        if drift:
            return Change(", ".join(drift), attributes_script(self.path, a["mode"], a["owner"], a["group"]))
        return NoChange(f"{self.path} has the wanted content and attributes")

    def _diff(self, observed: Observed) -> str:
        if self.args["sensitive"]:
            return f"{self.path}: sensitive content changed (not shown)\n"
        old_content = content(observed, DIFF_LIMIT)
        if observed.get("type") == "absent":
            old = b""
        elif old_content is not None:
            old = old_content
        else:
            return f"{self.path}: content changed (old content not read: larger than {DIFF_LIMIT} bytes)\n"
        return unified_diff(self.path, old, self.data)


class Template(File):
    """A Jinja2 template from the playbook's folder, rendered per host on the controller."""

    kind: ClassVar[str] = "template"
    payload_option: ClassVar[str | None] = "src"
    payload_is_template: ClassVar[bool] = True
    options: ClassVar[dict[str, Option]] = {
        "src": Option((str,), required=True, help="template path, relative to the playbook"),
        "dest": PATH, "mode": MODE, "owner": OWNER, "group": GROUP,
        "sensitive": Option((bool,), default=False),
    }

    def setup(self) -> None:
        self.args["path"] = self.args.pop("dest")
        self.args["state"] = "present"
        self.args["content"] = None
        self.args["source"] = self.args["src"]
        super().setup()


class LineInFile(PathStep):
    """Ensure one line is (or is not) in a file; `regexp` picks the line to replace."""

    kind: ClassVar[str] = "line_in_file"
    options: ClassVar[dict[str, Option]] = {
        "path": PATH, "line": Option((str,)), "regexp": Option((str,)), "state": STATE,
        "create": Option((bool,), default=False), "mode": MODE, "owner": OWNER, "group": GROUP,
    }

    def setup(self) -> None:
        super().setup()
        if self.args["state"] == "present" and self.args.get("line") is None:
            raise self.where.error("line_in_file: 'line' is required when state is present")
        if self.args.get("line") is not None and ("\n" in self.args["line"] or "\r" in self.args["line"]):
            raise self.where.error("line_in_file: 'line' must be a single line")
        for key in ("line", "regexp"):
            if self.args.get(key) is not None:
                try:
                    names.text(self.args[key], f"line_in_file: {key}")
                except BadInput as exc:
                    raise self.where.error(exc.message) from None
        if self.args["state"] == "absent" and self.args.get("line") is None and not self.args.get("regexp"):
            raise self.where.error("line_in_file: state absent needs 'line' or 'regexp'")
        self.expected_sha = ""  # set by decide: the sha256 the file must have once the change is applied
        try:
            self.regex = re.compile(self.args["regexp"]) if self.args.get("regexp") else None
        except re.error as exc:
            raise self.where.error(f"line_in_file: bad regexp: {exc}") from None

    def probe_path(self) -> tuple[str, bool] | None:
        return (self.path, True)

    def probe_script(self) -> Sh:
        return sh(Sh("zp_content"), self.path, EDIT_LIMIT)

    def verify_script(self) -> Sh:
        return EMPTY  # the batch's stat and sha256 tell whether the file now holds what decide computed

    def verify(self, observed: Observed, apply_output: str) -> str | None:
        a = self.args
        if observed.get("type") != "file":
            return f"still differs after apply: {self.path} is {observed.get('type', 'unknown')}, not a file"
        if observed.get("sha256", "").split(" ")[0] != self.expected_sha:
            return f"still differs after apply: {self.path} does not hold the edited content"
        drift = attributes_drift(observed, a["mode"], a["owner"], a["group"])
        return f"still differs after apply: {', '.join(drift)}" if drift else None

    def _matches(self, line: str) -> bool:
        line = line.rstrip("\r")  # a CRLF file's lines match as their LF twins do
        if self.regex is not None:
            return bool(self.regex.search(line))
        return bool(line == self.args["line"])

    def decide(self, observed: Observed) -> Decision:
        a = self.args
        kind = observed.get("type")
        if kind == "absent":
            if a["state"] == "absent":
                return NoChange(f"{self.path} does not exist")
            if not a["create"]:
                return Change(f"{self.path} does not exist", fail(f"{self.path} does not exist (set create: true)"))
            old = b""
        elif kind != "file":
            return Change(f"{self.path} is a {kind}", fail(f"{self.path} is not a regular file"))
        else:
            read = content(observed, EDIT_LIMIT)
            if read is None:
                return Change(f"{self.path} too large", fail(f"{self.path} is too large to edit"))
            old = read
        text = old.decode("utf-8", errors="surrogateescape")
        lines = text.split("\n")  # only LF ends a line (str.splitlines would break at \x1e, \x85, U+2028 too)
        if lines[-1] == "":
            lines.pop()
        if a["state"] == "present":
            wanted = a["line"]
            hits = [i for i, line in enumerate(lines) if self._matches(line)]
            if hits and lines[hits[-1]].rstrip("\r") == wanted:
                new_lines = lines
            elif hits:
                new_lines = lines[:]
                new_lines[hits[-1]] = wanted
            elif any(line.rstrip("\r") == wanted for line in lines):
                new_lines = lines
            else:
                new_lines = [*lines, wanted]
        else:
            new_lines = [line for line in lines if not self._matches(line)]
        if new_lines == lines and kind == "file":
            self.expected_sha = hashlib.sha256(old).hexdigest()  # what verify reads back after an attribute change
            drift = attributes_drift(observed, a["mode"], a["owner"], a["group"])
            if drift:
                return Change(", ".join(drift), attributes_script(self.path, a["mode"], a["owner"], a["group"]))
            return NoChange(f"{self.path} already has the wanted line" if a["state"] == "present"
                            else f"{self.path} has no matching line")
        new = ("\n".join(new_lines) + "\n").encode("utf-8", errors="surrogateescape") if new_lines else b""
        self.expected_sha = hashlib.sha256(new).hexdigest()
        script = write_file_script(self.path, new, a["mode"], a["owner"], a["group"], exists=kind != "absent")
        verb = "add line to" if a["state"] == "present" else "remove line from"
        return Change(f"{verb} {self.path}", script, unified_diff(self.path, old, new) if self.want_content else None)


class Symlink(PathStep):
    kind: ClassVar[str] = "symlink"
    options: ClassVar[dict[str, Option]] = {
        "path": PATH, "target": Option((str,), required=True), "state": STATE,
        "force": Option((bool,), default=False, help="replace a file that is in the way"),
    }

    def setup(self) -> None:
        super().setup()
        try:
            names.link_target(self.args["target"], "symlink: target")
        except BadInput as exc:
            raise self.where.error(exc.message) from None

    def decide(self, observed: Observed) -> Decision:
        a = self.args
        if a["state"] == "absent":
            if observed.get("type") == "link":
                return Change(f"remove link {self.path}", sh(Sh("rm -f --"), self.path))
            return NoChange(f"no link at {self.path}")
        kind = observed.get("type")
        if kind == "link" and observed.get("target") == a["target"]:
            return NoChange(f"{self.path} -> {a['target']} already")
        if kind not in ("absent", "link") and not a["force"]:
            return Change(f"{self.path} is a {kind}",
                          fail(f"{self.path} exists and is a {kind} (set force: true to replace it)"))
        parent, _, name = self.path.rpartition("/")
        temp = Sh('"$zt"')
        if kind == "absent":  # creating a link is atomic: no temp link to rename (one process fewer)
            script = sh(Sh("ln -s --"), a["target"], self.path)
        else:
            script = lines(
                cat(Sh("zt="), temp_name(parent, name)),
                sh(Sh("ln -sfn --"), a["target"], temp),
                sh(Sh("if [ -d"), self.path, Sh("] && [ ! -L"), self.path, Sh("]; then rm -rf --"), self.path,
                   Sh("; fi")) if a["force"] else EMPTY,
                sh(Sh("mv -Tf --"), temp, self.path))
        old = observed.get("target")
        was = shown(old, line=True) if old is not None else None
        summary = f"link {self.path} -> {a['target']}" + (f" (was -> {was})" if was is not None else "")
        return Change(summary, script, f"{self.path}: -> {was or '(none)'}\n{self.path}: -> {a['target']}\n")


def unified_diff(path: str, old: bytes, new: bytes) -> str:
    if b"\0" in old or b"\0" in new:
        return f"{path}: binary content changed\n"
    return "".join(difflib.unified_diff(
        old.decode("utf-8", errors="replace").splitlines(keepends=True),
        new.decode("utf-8", errors="replace").splitlines(keepends=True),
        fromfile=f"{path} (before)", tofile=f"{path} (after)",
    ))
