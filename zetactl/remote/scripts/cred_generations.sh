# The generation each named credential holds on this node (fields g<INDEX>, from its marker).
# zc_generation INDEX NAME STATE
zc_generation() {
  zf "g$1" "$(sed -n 's/^generation //p' "$3/$2.meta" 2>/dev/null)"
}
