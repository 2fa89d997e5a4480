# Every module zetactl manages in this folder (the folder is imported by configuration.nix).
{ lib, ... }:
{
  imports = map (name: ./. + "/${name}")
    (builtins.filter (name: name != "default.nix" && lib.hasSuffix ".nix" name)
      (builtins.attrNames (builtins.readDir ./.)));
}
