"""Everything that crosses to a node: shell text quoted by construction (shell), the one answer format and its
parser (frame), the one runner (runner: imported on its own, it loads the SSH stack), and the names that may enter
(names). Scripts ship in scripts/."""

from zetactl.remote.frame import Answer, BadAnswer, Records, shown
from zetactl.remote.shell import EMPTY, Sh, cat, fail, lines, operator_shell, quote, script, sh, source

__all__ = ["EMPTY", "Answer", "BadAnswer", "Records", "Sh", "cat", "fail", "lines", "operator_shell", "quote", "script",
           "sh", "shown", "source"]
