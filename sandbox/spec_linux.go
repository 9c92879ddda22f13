package sandbox

import (
	"log/slog"
	"os"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	"github.com/nix-build-shell/nbs/sandbox/term"
)

// newSpec describes the sandbox the build ran in, over the workspace:
// Nix's mount plan, environment, names and per-process state, and the
// command that runs in it.
func newSpec(c Config, b *keptBuild, m mode, facts hostFacts, ws *workspace, log *slog.Logger) *spec {
	if m == modeNoNamespaces {
		return noNamespaceSpec(c, b, facts, ws, log)
	}
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
		if s.View != nil {
			s.View.HostIDs = true
		}
		s.HostNetwork = true
		s.Hostname, s.Domainname = "", ""
	}
	s.Argv, s.RC = sandboxArgv(c, b, b.sandboxDir, "", log)
	for _, op := range s.Mounts {
		log.Debug("mount plan", "op", op.String())
	}
	return s
}

// nixSandbox is Nix's sandbox over the workspace with the build
// directory at buildDir and, when shell is set, that shell on /bin/sh;
// the caller adds the command, its environment and its directory.
// Fixed-output derivations (an outputHash) keep the host's network in
// Nix (no network namespace) and see its resolv.conf, services and hosts.
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
		View:        ws.view,
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
//
// dir is where the command finds the build directory (the copy);
// relocate, shell code run right after env-vars is sourced.
func sandboxArgv(c Config, b *keptBuild, dir, relocate string, log *slog.Logger) ([]string, string) {
	load := loadCommand(b.dir, dir)
	if relocate != "" {
		load += "; " + relocate
	}
	rc := rcConfig{
		shell:    b.shell,
		load:     load,
		tools:    toolsPATH(b.tools),
		buildDir: dir,
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

// noNamespaceSpec is modeNoNamespaces: an unsandboxed build entered
// where no namespace can be made. Such a build saw the host as its build
// user; so does the command, with the build's environment, in the copy,
// which cannot be at the original path without a mount namespace: the
// variables Nix pointed at the build directory point at the copy, the
// command starts there, and nbs says what still names the original.
func noNamespaceSpec(c Config, b *keptBuild, facts hostFacts, ws *workspace, log *slog.Logger) *spec {
	dir := ws.dir.build()
	vars := relocatedVars(b.env, b.sandboxDir, dir)
	var names, assign []string
	env := b.env.Environ()
	for _, v := range vars {
		names = append(names, v.Name)
		assign = append(assign, v.Name+"="+shquote.Quote(v.Value))
		for i, e := range env {
			if strings.HasPrefix(e, v.Name+"=") {
				env[i] = v.Name + "=" + v.Value
			}
		}
	}
	orig := b.sandboxDir
	log.Warn("this build ran without Nix's sandbox (sandbox = false) and namespaces are not available here, so nbs enters it without any: on the host, " +
		"in a copy of the build directory at " + dir + " (" + strings.Join(names, ", ") + " point there); " +
		"absolute paths recorded inside files still name the original " + orig + ", which stays as it was: " +
		"`grep -rlF " + shquote.Quote(orig) + " .` lists them, to edit in the copy; or give nbs namespaces (see below) to have the copy at that path")
	s := &spec{
		Root:         "/",
		Env:          env,
		Cwd:          dir,
		Unsandboxed:  true,
		NoNamespaces: true,
		HostNetwork:  true,
		TTY:          term.IsTerminal(c.Stdin) && term.IsTerminal(c.Stdout),
		Seccomp:      facts.seccomp,
		NoNewPrivs:   facts.noNewPrivs,
	}
	s.Argv, s.RC = sandboxArgv(c, b, dir, strings.Join(assign, " "), log)
	return s
}

// buildDirVars are the variables Nix points at the build directory
// (initEnv in Nix's derivation-builder.cc: NIX_BUILD_TOP, TMPDIR, TEMPDIR,
// TMP, TEMP, PWD; the structured-attrs files), which the shell may have
// moved below it (PWD, OLDPWD).
var buildDirVars = []string{"NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD", "OLDPWD", "NIX_ATTRS_JSON_FILE", "NIX_ATTRS_SH_FILE"}

// relocatedVars are those of buildDirVars that env-vars has at or below
// from, moved to the same place below to.
func relocatedVars(ev *nix.EnvVars, from, to string) []nix.Var {
	var out []nix.Var
	for _, name := range buildDirVars {
		v, ok := ev.Get(name)
		if !ok {
			continue
		}
		if rest, ok := strings.CutPrefix(v, from); ok && (rest == "" || strings.HasPrefix(rest, "/")) {
			out = append(out, nix.Var{Name: name, Value: to + rest})
		}
	}
	return out
}

// hasKVM: Nix binds /dev/kvm when the machine's system-features contain
// kvm, which they do by default when the daemon (root) can use the
// device. The assignment asks for it whenever the host has it; binding
// needs no access to the device, so an ordinary caller gets it too.
func hasKVM() bool {
	_, err := os.Stat("/dev/kvm")
	return err == nil
}
