# A script on a channel of its own (after the prelude): read it whole from stdin, run it only if it arrived whole
# (its last line is the end line: a connection cut mid-transfer runs none of it), answer its stdout in one record
# (zanswer) with its exit status; its stderr goes to the channel's.
zs=$(cat)
case "$zs" in *"# zetactl: end of script") ;; *) echo "zetactl: the script arrived cut short; none of it ran" >&2; exit 96;; esac
zo=$(eval "$zs" </dev/null)
zr=$?
zanswer "$zr" "$zo" ''
