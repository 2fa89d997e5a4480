"""zetactl: operate a fleet of NixOS machines over SSH."""

__version__ = "0.1.0"
