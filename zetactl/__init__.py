"""zetactl: operate a fleet of NixOS machines over SSH."""

import warnings

__version__ = "0.1.0"

# cryptography 46+ deprecates DSA, which asyncssh names when it is imported: ten lines on stderr of every command
# that connects (a mail a run from cron), about an algorithm zetactl never offers or accepts
warnings.filterwarnings("ignore", message="DSA is deprecated", module=r"asyncssh(\.|$)")
