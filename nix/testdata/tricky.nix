let
  bash = builtins.path { path = /bin/bash-static; name = "bash"; };
in derivation {
  name = "nbs-tricky-env";
  system = builtins.currentSystem;
  builder = bash;
  multiLine = "line one\nline two";
  quoting = "a \"quoted\" \\ back $dollar `tick` 'single'";
  unicode = "café ☃ 日本";
  args = [ "-c" ''
    export SHELL=${bash}
    export CTRL=$'bell\a esc\e tab\t cr\r del\x7f'
    export HIGH=$'\xff\xfe latin1 \xe9'
    export EMPTY=
    export UNSET_BUT_EXPORTED
    declare -rx RO="read only"
    declare -ix NUM=42
    arr=(one "two words"); export arr
    cd /build
    export -p > /build/env-vars
    exit 1
  '' ];
}
