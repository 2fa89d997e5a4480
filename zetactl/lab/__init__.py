"""The lab: a local fleet of real OpenSSH servers on loopback that behave like NixOS nodes."""

from zetactl.lab.fleet import Lab, LabNode

__all__ = ["Lab", "LabNode"]
