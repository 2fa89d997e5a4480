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

from zetactl.errors import BadInput
from zetactl.steps.base import Change, Decision, NoChange, Observed, Option, Step, q

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

        self.record = store.load(self.args["name"])
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

    def probe_script(self) -> str:
        path = q(self.record.target.path)
        return (f"[ -f {NODE_STATE}/{self.name}.meta ] && sed 's/^/m_/' {NODE_STATE}/{self.name}.meta\n"
                f"if [ -f {path} ]; then echo 'present yes'; stat -L -c 'stat %a %U %G' {path}; fi\n"
                f"echo \"gens $(ls {GENERATIONS}/{self.name} 2>/dev/null | tr '\\n' ' ')\"")

    def _installed(self, observed: Observed) -> tuple[int, str, bool]:
        generation = observed.get("m_generation", "")
        target = self.record.target
        stat = observed.get("stat", "").split()
        right = (observed.get("present") == "yes" and len(stat) == 3 and stat[0].rjust(4, "0") == target.mode
                 and stat[1] == target.owner and stat[2] == target.group)
        return int(generation) if generation.isdigit() else 0, observed.get("m_digest", ""), right

    def decide(self, observed: Observed) -> Decision:
        generation, digest, right = self._installed(observed)
        short = self.digest[:12]
        if generation > self.generation:
            return Change(f"node has generation {generation} of {self.name}, newer than the controller's "
                          f"{self.generation}",
                          f"echo {q(f'refusing to go back from generation {generation} to {self.generation}')} >&2; "
                          f"exit {REFUSED}")
        current = generation == self.generation and digest == self.digest and right
        if self.args["retire"]:
            old = [g for g in observed.get("gens", "").split() if g.isdigit() and int(g) != self.generation]
            if not current:
                return Change(f"cannot retire: generation {self.generation} of {self.name} is not installed",
                              f"echo 'generation {self.generation} of {self.name} is not installed' >&2; "
                              f"exit {REFUSED}")
            if not old:
                return NoChange(f"only generation {self.generation} of {self.name} is on the node")
            return Change(f"retire {self.name} generation(s) {', '.join(sorted(old))}",
                          "\n".join(f"rm -f {GENERATIONS}/{self.name}/{g}" for g in old),
                          f"{self.name}: retire generation(s) {', '.join(sorted(old))}\n")
        if current:
            return NoChange(f"{self.name} generation {self.generation} installed (digest {short}...)")
        if generation == self.generation and digest == self.digest:
            why = "missing or wrong mode/owner (reinstall)"
        else:
            why = f"generation {generation or 'none'} -> {self.generation}"
        diff = (f"{self.name}: {why}; digest {digest[:12] or '-'}... -> {short}...; "
                f"{self.record.target.path} {self.record.target.mode} {self.record.target.owner}\n")
        return Change(f"install {self.name} ({why})", self.install_script(), diff)

    def install_script(self) -> str:
        encoded = base64.b64encode(self.envelope).decode()
        wrapped = "\n".join(encoded[i : i + 76] for i in range(0, len(encoded), 76))
        return INSTALL.replace("@NAME@", self.name).replace("@ENVELOPE@", wrapped)


# Checks an opened envelope ($W/plain) on the node, before anything is installed: POSIX sh + coreutils; the
# value only ever travels as file content. Needs N (the credential), S (the state dir), me (this node's id) and
# refuse(). The digest (the header's last line) is sha256 of the plaintext without that line, recomputed over
# the exact bytes: any byte changed, inserted or removed, in the header or the value, is refused before a
# field is read. Leaves $W/head, $W/value and d, na, gen, cur, path, mode, owner, group (checked).
CHECK = r"""sed -n '1,/^$/p' "$W/plain" > "$W/head"
magic=$(head -n 1 "$W/head")
[ "$magic" != "zeta-credential v1" ] || refuse "envelope format v1, sealed by an older zetactl (its header is \
not bound to its digest): reseal it with zetactl creds rotate $N --from-file FILE"
[ "$magic" = "zeta-credential v2" ] || refuse "not a zeta credential envelope (v2)"
hn=$(wc -l < "$W/head"); hl=$(wc -c < "$W/head")
[ "$hn" -ge 3 ] && [ -z "$(tail -n 1 "$W/head")" ] || refuse "the envelope has no header end"
tail -c +"$((hl + 1))" "$W/plain" > "$W/value"
d=$(sed -n "$((hn - 1))s/^digest //p" "$W/head")
[ -n "$d" ] && [ "$({ sed "$((hn - 1))d" "$W/head"; cat "$W/value"; } | sha256sum | cut -d' ' -f1)" = "$d" ] \
  || refuse "the header or the value does not match the envelope's digest (edited or damaged after sealing)"
h() { sed -n "s/^$1 //p" "$W/head" | head -n 1; }
[ "$(h node)" = "$me" ] || refuse "sealed for node '$(h node)', this node is '$me'"
[ "$(h name)" = "$N" ] || refuse "the envelope holds credential '$(h name)', not '$N'"
na=$(h not-after)
case "$na" in ''|*[!0-9]*) refuse "not-after '$na' is not a number" ;; esac
[ "$na" = 0 ] || [ "$(date +%s)" -lt "$na" ] || refuse "expired at $(date -u -d "@$na" '+%Y-%m-%d %H:%M:%S') UTC"
gen=$(h generation)
case "$gen" in ''|*[!0-9]*) refuse "generation '$gen' is not a number" ;; esac
cur=$(sed -n 's/^generation //p' "$S/$N.meta" 2>/dev/null || true); cur=${cur:-0}
[ "$gen" -ge "$cur" ] || refuse "generation $gen is older than the installed generation $cur (a replay?)"
[ "$(wc -c < "$W/value")" -eq "$(h length)" ] || refuse "the value is not $(h length) bytes long (truncated?)"
path=$(h path); mode=$(h mode); owner=$(h owner); group=$(h group)
case "$path" in
  */../*|*/..) refuse "path $path climbs out of /run" ;;
  /run/?*) ;;
  *) refuse "path $path is not under /run (tmpfs)" ;;
esac
case "$mode" in [0-7][0-7][0-7]|0[0-7][0-7][0-7]) ;; *) refuse "mode $mode is not octal" ;; esac
[ $((0$mode & 0037)) -eq 0 ] || refuse "mode $mode lets others (or the group) write or read it"
"""

# Runs on the node under `set -e` (the engine's apply wrapper). Values only ever touch tmpfs (/run).
INSTALL = r"""N=@NAME@
S=/var/lib/zeta/creds
G=/run/zeta/creds/.gen/$N
mkdir -p /run/zeta/creds/.in "$G" "$S"
chmod 0755 /run/zeta/creds /run/zeta/creds/.gen
chmod 0700 /run/zeta/creds/.in "$S"
W=$(mktemp -d /run/zeta/creds/.in/XXXXXX)
trap 'rm -rf "$W"' EXIT
refuse() { echo "refused: $*" >&2; exit 3; }
base64 -d > "$W/envelope.age" <<'ZETA_ENVELOPE'
@ENVELOPE@
ZETA_ENVELOPE
command -v age >/dev/null 2>&1 || refuse "the age tool is not installed on this node"
age -d -i /etc/ssh/ssh_host_ed25519_key -o "$W/plain" "$W/envelope.age" 2> "$W/err" \
  || refuse "cannot open the envelope with this node's host key: $(head -c 300 "$W/err")"
me=$(cat /etc/zeta/node-id 2>/dev/null || hostname)
@CHECK@chown "$owner:$group" "$W/value" || refuse "owner $owner:$group does not exist on this node"
chmod "$mode" "$W/value"
mv -f "$W/value" "$G/.$gen.tmp" && mv -f "$G/.$gen.tmp" "$G/$gen"
mkdir -p "$(dirname "$path")"
ln -sfn "$G/$gen" "$path.zeta-tmp" && mv -Tf "$path.zeta-tmp" "$path"
for old in $(ls "$G"); do
  case "$old" in "$gen"|"$cur") ;; *) rm -f "$G/$old" ;; esac   # keep the previous until retired
done
cp "$W/envelope.age" "$S/.$N.age.tmp" && mv -f "$S/.$N.age.tmp" "$S/$N.age"
for unit in $(h units); do  # a unit this node does not have (yet) is no error
  [ "$(systemctl show -p LoadState --value -- "$unit" 2>/dev/null)" = not-found ] && continue
  systemctl try-restart -- "$unit"
done
# the marker last: a failed restart (or a cut connection) makes the next run install and restart again
{ printf 'generation %s\ndigest %s\nnot-after %s\npath %s\ninstalled %s\n' "$gen" "$d" "$na" "$path" \
    "$(date +%s)"; } > "$S/.$N.meta.tmp" && mv -f "$S/.$N.meta.tmp" "$S/$N.meta"
echo "installed $N generation $gen"
""".replace("@CHECK@", CHECK)
