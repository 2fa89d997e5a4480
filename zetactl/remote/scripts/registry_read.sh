# A hub's tenant registry (zetactl/hubs/registry.py): field registry, the file, when there is one.
# values: DIR
if [ -e "$DIR/registry" ]; then zf registry "$(cat "$DIR/registry")"; fi
