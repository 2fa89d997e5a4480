# Remove a tenant's files from its machine (zetactl/hubs/tenants.py): its credentials' generations, markers and
# envelopes, the links at its token paths, its hub endpoints file. NAMES and PATHS: one per line.
# values: NAMES PATHS ENDPOINTS GENS STATE
set -eu
printf '%s\n' "$NAMES" | while IFS= read -r n; do
  [ -n "$n" ] || continue
  rm -rf -- "${GENS:?}/$n"
  rm -f -- "$STATE/$n.meta" "$STATE/$n.age" "$STATE/$n.hdr"
done
printf '%s\n' "$PATHS" | while IFS= read -r p; do
  if [ -n "$p" ] && [ -L "$p" ]; then rm -f -- "$p"; fi
done
rm -f -- "$ENDPOINTS"
zf removed yes
