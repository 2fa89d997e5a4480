# zn_digest DIR: sha256 over every file of a NixOS configuration (names and contents; dot files left out)
zn_digest() {
  (cd "$1" 2>/dev/null && find -L . -type f ! -name '.*' -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum \
    | sha256sum | cut -d' ' -f1)
}
