"""The engine: fleet fan-out, the per-host step state machine, and the remote scripts it sends."""
