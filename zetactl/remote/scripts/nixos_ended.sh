# How a switch ended, once it has: a late confirmation (fields verdict, result) or the rollback record (rolled).
# values: S
v=$(readlink "$S/verdict" 2>/dev/null)
if [ "$v" = confirmed ]; then
  zf verdict confirmed
  zf result "$(cat "$S/result")"
elif [ -f "$S/rolled-back" ]; then
  zf rolled "$(cat "$S/rolled-back")"
fi
