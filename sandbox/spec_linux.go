package sandbox

import (
	"log/slog"
	"os"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/term"
)

// newSpec describes the sandbox the build ran in, over the workspace:
// Nix's mount plan, environment, names and per-process state, and the
// command that runs in it.
func newSpec(c Config, b *keptBuild, facts hostFacts, ws *workspace, log *slog.Logger) *spec {
	_, fixedOutput := b.vars.get("outputHash")
	tty := term.IsTerminal(c.Stdin) && term.IsTerminal(c.Stdout)
	s := nixSandbox(ws, facts, b.sandboxDir, b.shell, fixedOutput, tty, log)
	s.Env = b.env.Environ()
	s.Cwd = b.sandboxDir
	if b.unsandboxed {
		// What such a build saw: the host as it is, the build
		// directory at its host path, the user's own ids.
		log.Warn("this build ran without Nix's sandbox (sandbox = false); so does this shell: the host's file system, network and processes, with the build directory at " + b.sandboxDir)
		s.Root = "/"
		s.Mounts = []Op{{Kind: OpBind, Source: ws.dir.build(), Target: b.sandboxDir}}
		s.Unsandboxed = true
		s.HostNetwork = true
		s.Hostname, s.Domainname = "", ""
	}
	s.Argv, s.RC = sandboxArgv(c, b, log)
	for _, op := range s.Mounts {
		log.Debug("mount plan", "op", op.String())
	}
	return s
}

// nixSandbox is Nix's sandbox over the workspace with the build
// directory at buildDir and, when shell is set, that shell on /bin/sh;
// the caller adds the command, its environment and its directory.
// Fixed-output derivations keep the host's network in Nix (no network
// namespace) and see its resolv.conf, services and hosts.
func nixSandbox(ws *workspace, facts hostFacts, buildDir, shell string, fixedOutput, tty bool, log *slog.Logger) *spec {
	if fixedOutput {
		log.Warn("fixed-output derivation: the sandbox shares the host's network, as Nix does for such builds")
	}
	return &spec{
		Root: ws.dir.root(),
		Mounts: NewPlan(PlanConfig{
			BuildDir:        ws.dir.build(),
			SandboxBuildDir: buildDir,
			TmpDir:          ws.dir.tmp(),
			Shell:           shell,
			StorePaths:      ws.storePaths,
			StoreDirSource:  ws.dir.store(),
			KVM:             hasKVM(),
			ShmSize:         facts.shmSize,
			EtcMode:         facts.etcMode,
			Extra:           facts.extra,
			HostNetwork:     fixedOutput,
		}),
		Hostname:    "localhost",
		Domainname:  "(none)",
		HostNetwork: fixedOutput,
		TTY:         tty,
		Seccomp:     facts.seccomp,
		NoNewPrivs:  facts.noNewPrivs,
	}
}

// sandboxArgv is the argv (and the interactive shell's rc file) of
// what runs in the sandbox: $SHELL with the build's environment loaded
// and the --with tools first in PATH, then Config.Script (in the
// interactive shell's environment, stdenv included), Config.Command
// (env-vars only, from the build directory) or an interactive shell.
func sandboxArgv(c Config, b *keptBuild, log *slog.Logger) ([]string, string) {
	rc := rcConfig{
		shell:    b.shell,
		load:     loadCommand(b.dir, b.sandboxDir),
		tools:    toolsPATH(b.tools),
		buildDir: b.sandboxDir,
		name:     promptName(b.drvPath, b.vars),
		color:    !term.NoColor(),
	}
	if len(b.tools) > 0 {
		log.Debug("tools added to the sandbox and PATH", "paths", strings.Join(b.tools, " "))
	}
	if len(c.Command) > 0 {
		return command(rc, c.Command), ""
	}
	if setup, ok := stdenvSetup(b.vars); ok {
		rc.stdenvSetup = setup
		if b.drvPath != "" {
			rc.failedPhase = nix.FailedPhase(b.drvPath)
		}
		log.Debug("stdenv: the shell sources its setup", "setup", setup, "failed phase", rc.failedPhase)
	}
	if c.Script != "" {
		return script(rc, c.Script), ""
	}
	return interactiveShell(rc)
}

// hasKVM: Nix binds /dev/kvm when the machine's system-features contain
// kvm, which they do by default when the daemon (root) can use the
// device. The assignment asks for it whenever the host has it; binding
// needs no access to the device, so an ordinary caller gets it too.
func hasKVM() bool {
	_, err := os.Stat("/dev/kvm")
	return err == nil
}
