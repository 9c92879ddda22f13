# Derivations for nbs's end-to-end tests. They need no nixpkgs and no
# network: the builder is a static bash from the host (Debian's
# bash-static) and the tools are a static busybox (busybox-static), both
# put into the store with builtins.path. Every failing build fails for
# real, in Nix's real sandbox, in well under a second.
#
#   nix-build --keep-failed testdata/e2e -A fail --argstr nonce "$RANDOM"
{ bash ? "/bin/bash-static"
, busybox ? "/bin/busybox"
  # Changes the derivations' hashes, so that tests running at the same
  # time never share a build.
, nonce ? ""
}:
let
  system = builtins.currentSystem;
  sh = builtins.path { path = /. + bash; name = "bash"; };
  bb = builtins.path { path = /. + busybox; name = "busybox"; };

  # A bin directory of busybox applets. busybox picks the applet from
  # argv[0], hence `exec -a`.
  tools = import ../busybox-tools.nix { inherit sh bb; name = "nbs-test-tools"; };

  # Like stdenv: run the script with PATH set, and write env-vars with
  # `export -p` before the part that fails. attrs are more attributes of
  # the derivation.
  mkWith = attrs: name: script: derivation ({
    inherit name system nonce;
    builder = sh;
    PATH = "${tools}/bin";
    SHELL = "${sh}";
    args = [ "-c" ''
      set -e
      ${script}
    '' ];
  } // attrs);
  mk = mkWith { };

  # A stand-in for nixpkgs' stdenv that behaves like the real one in
  # everything nbs depends on (../stdenv).
  std = import ../stdenv { inherit sh tools; };

  # The source of the widget builds: a generator that fails the way a
  # real tool does, found only through the PATH that preConfigure
  # extends.
  widgetSrc = derivation {
    name = "widget-src";
    inherit system;
    builder = sh;
    PATH = "${tools}/bin";
    args = [ "-c" ''
      mkdir -p $out/tools
      printf '#!${sh}\necho "widget-gen: $1: line 2: unknown widget knob" >&2\nexit 7\n' > $out/tools/widget-gen
      chmod 0755 $out/tools/widget-gen
      printf 'button\nknob\n' > $out/main.w
    '' ];
  };

  # An input with a setup hook that, like cc-wrapper's, registers an env
  # hook and extends flags each time setup is sourced, and a bin/ for
  # PATH.
  widgetHook = derivation {
    name = "widget-hook";
    inherit system;
    builder = sh;
    PATH = "${tools}/bin";
    args = [ "-c" ''
      mkdir -p $out/bin $out/nix-support $out/share/widgets
      printf '#!${sh}\necho widget-hook-tool\n' > $out/bin/widget-hook-tool
      chmod 0755 $out/bin/widget-hook-tool
      cat > $out/nix-support/setup-hook <<'EOF'
      widgetEnvHook() { addToSearchPath WIDGET_PATH "$1/share/widgets"; }
      addEnvHooks "$hostOffset" widgetEnvHook
      export NIX_CFLAGS_COMPILE="''${NIX_CFLAGS_COMPILE-} -DWIDGET_HOOK"
      preConfigureHooks+=(widgetPreConfigure)
      widgetPreConfigure() { echo "widget-hook: preConfigure hook"; }
      EOF
    '' ];
  };

  # A stdenv build failing in buildPhase, as nixpkgs runs it: genericBuild
  # under bash -e; preConfigure puts the source's tools/ first in PATH;
  # buildPhase records its environment and fails with status 7.
  # envVarsMode 0644 lets an unprivileged nbs read env-vars.
  widget = { structured ? false, envVarsMode ? null }: std.mkDerivation ({
    name = "nbs-e2e-widget" + (if structured then "-structured" else "");
    inherit nonce;
    src = widgetSrc;
    nativeBuildInputs = [ widgetHook ];
    preConfigure = ''export PATH="$PWD/tools:$PATH"'';
    buildPhase = ''
      runHook preBuild
      export -p > "$NIX_BUILD_TOP/buildphase-env"
      echo "building widgets in $PWD"
      widget-gen main.w
      runHook postBuild
    '';
    installPhase = "mkdir -p $out; echo installed > $out/marker";
  } // (if structured then { __structuredAttrs = true; } else { })
    // (if envVarsMode == null then { } else if structured then { env.nbsTestEnvVarsMode = envVarsMode; } else { nbsTestEnvVarsMode = envVarsMode; }));

  # A tool the failing builds do not have, for --with.
  extraTool = derivation {
    name = "nbs-test-extra-tool";
    inherit system;
    builder = sh;
    PATH = "${tools}/bin";
    args = [ "-c" ''
      mkdir -p $out/bin
      printf '#!${sh}\necho extra tool here\n' > $out/bin/nbs-extra-tool
      chmod 0755 $out/bin/nbs-extra-tool
    '' ];
  };
in
{
  inherit tools extraTool widgetSrc widgetHook;

  # Fails with exit 3 after leaving files of every kind behind.
  fail = mk "nbs-e2e-fail" ''
    mkdir -p src/empty src/sub
    echo hello > src/file.txt
    chmod 0705 src/sub
    echo '#!${sh}' > src/run.sh; chmod 0755 src/run.sh
    ln -s file.txt src/link
    ln -s /etc/passwd src/abs-link
    mkfifo src/fifo
    cd src
    export -p > $NIX_BUILD_TOP/env-vars
    echo "nbs-e2e: failing on purpose" >&2
    exit 3
  '';

  # Fails leaving what a view of /build must not resolve on the host:
  # symlinks to a host-only file and up out of the build directory, a
  # fifo (the containment test adds a device node to a copy of it, which
  # no build can make).
  failLinks = mk "nbs-e2e-fail-links" ''
    mkdir -p src/sub
    echo hello > src/file.txt
    echo deep > src/sub/deep.txt
    ln -s /etc/shadow src/shadow-link
    ln -s ../../.. src/up-link
    ln -s /nix/var/nix/daemon-socket/socket src/daemon-link
    mkfifo src/fifo
    export -p > $NIX_BUILD_TOP/env-vars
    echo "nbs-e2e: failing on purpose" >&2
    exit 3
  '';

  # stdenv builds (the stand-in) that fail in buildPhase: env-vars 0600
  # as recent nixpkgs writes it, or 0644 for an unprivileged nbs; plain
  # and with structured attrs.
  stdenv = widget { };
  stdenvReadable = widget { envVarsMode = "0644"; };
  stdenvStructured = widget { structured = true; };
  stdenvStructuredReadable = widget { structured = true; envVarsMode = "0644"; };

  # A second failure, for --keep-going and -A tests.
  fail2 = mk "nbs-e2e-fail2" ''
    echo second > second.txt
    export -p > $NIX_BUILD_TOP/env-vars
    exit 4
  '';

  # env-vars written 0600 for the build user, as recent nixpkgs does.
  # A sandboxed build whose env-vars claims it ran on the host (in a
  # host build directory, as a sandbox = false build has it): nbs must
  # not believe the build's own word.
  forgedTop = mk "nbs-e2e-forged-top" ''
    echo hello > file.txt
    top=$NIX_BUILD_TOP
    export NIX_BUILD_TOP=/tmp/nix-build-nbs-e2e-forged-top.drv-0
    export -p > $top/env-vars
    exit 3
  '';

  private = mk "nbs-e2e-private" ''
    echo secret > data.txt
    # stdenv: install -m 0600 /dev/null env-vars (busybox has no install)
    (umask 077; : > $NIX_BUILD_TOP/env-vars)
    export -p > $NIX_BUILD_TOP/env-vars
    exit 5
  '';

  # Succeeds.
  ok = mk "nbs-e2e-ok" ''
    echo ok > $out
  '';

  # A fixed-output derivation: Nix gives it the host's network.
  fod = derivation {
    name = "nbs-e2e-fod";
    inherit system nonce;
    builder = sh;
    PATH = "${tools}/bin";
    SHELL = "${sh}";
    outputHashMode = "flat";
    outputHashAlgo = "sha256";
    outputHash = "0000000000000000000000000000000000000000000000000000";
    args = [ "-c" "export -p > $NIX_BUILD_TOP/env-vars; exit 6" ];
  };

  # Structured attrs: Nix writes .attrs.sh and .attrs.json, and the
  # builder sources .attrs.sh as nixpkgs' builders do.
  structured = derivation {
    name = "nbs-e2e-structured";
    inherit system nonce;
    __structuredAttrs = true;
    builder = sh;
    args = [ "-c" ''
      source .attrs.sh
      export PATH="''${env[PATH]}" SHELL="''${env[SHELL]}"
      export -p > $NIX_BUILD_TOP/env-vars
      exit 8
    '' ];
    flags = [ "first" "second" ];
    env = { PATH = "${tools}/bin"; SHELL = "${sh}"; };
  };

  # Takes long, for interruption tests.
  slow = mk "nbs-e2e-slow" ''
    export -p > $NIX_BUILD_TOP/env-vars
    sleep 600
  '';

  # Hangs, for nbs attach: writes a marker, says so on stderr, then waits
  # until /build/release appears (which only someone inside can make)
  # and fails as a hung build that gives up would. The wait has a cap
  # so that a test that dies leaves no build behind for long. The name
  # carries the nonce: tests find it by name.
  hang = mkWith { hangAttr = "from-the-derivation"; } "nbs-e2e-hang-${builtins.substring 0 12 (builtins.hashString "sha256" nonce)}" ''
    mkdir work && cd work
    echo "written before hanging" > $NIX_BUILD_TOP/marker
    export -p > $NIX_BUILD_TOP/env-vars
    echo "nbs-e2e: hanging now" >&2
    i=0
    while [ ! -e $NIX_BUILD_TOP/release ] && [ $i -lt 3000 ]; do sleep 0.2; i=$((i+1)); done
    echo "nbs-e2e: the hung build ends" >&2
    exit 11
  '';
}
