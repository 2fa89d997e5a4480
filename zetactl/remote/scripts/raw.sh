# An operator's command (`zetactl run`): read it whole from stdin, run it only if it arrived whole; its output goes
# to the channel as it comes (it is shown, never parsed).
zs=$(cat)
case "$zs" in *"# zetactl: end of script") ;; *) echo "zetactl: the script arrived cut short; none of it ran" >&2; exit 96;; esac
eval "$zs" </dev/null
