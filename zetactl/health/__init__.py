"""`zetactl health`: the read-only fleet sweep that cron runs (checks, sweep, history, output)."""
