package sandbox

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
)

// Enter copies the kept directory, runs the command (or an interactive
// shell) in a re-created Nix sandbox over the copy, tells c.Changed what
// changed in the copy, removes the copy (with Keep, returns its path
// instead) and returns the command's exit status (128+N when it was
// killed by signal N). SIGINT, SIGTERM and SIGHUP end the sandbox and
// return an *interrupt.Error.
//
// A session is four parts, each in a file of its own: prepare (read what
// the build left, the sandbox user, the host's Nix), workspace (the work
// directory, the copy, the store view), spec (the sandbox the child is
// to build) and run (start, terminal, wait, what changed). Clean-up is
// deferred, in the reverse order.
func Enter(ctx context.Context, c Config) (status int, keptCopy string, err error) {
	log := c.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(c.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	// First, so that a signal at any later point ends the session
	// through the same clean-up.
	ctx, signals := interrupt.Catch(ctx)
	defer signals.Stop()

	// Prepare. The kept directory, its env-vars and --with are checked
	// before anything is created: bad input leaves nothing behind.
	b, err := readBuild(c.Dir, c.With)
	if err != nil {
		return 0, "", err
	}
	// The sandbox user before the work directory, which belongs to it
	// when nbs is root, and before nix runs: root's groups go first.
	u, err := takeSandboxUser()
	if err != nil {
		return 0, "", err
	}
	defer u.release()
	facts := readHostFacts(ctx, log)

	// Workspace. From here on the work directory exists: it is removed
	// (or kept) on every way out, after the sandbox has ended.
	ws, err := openWorkspace(u, log)
	if err != nil {
		return 0, "", err
	}
	defer func() { keptCopy, err = ws.close(c.Keep, b.dir, err) }()
	if err := ws.copy(ctx, b.dir, c.Progress, log); err != nil {
		// A copy cut short by a signal reports the signal.
		if ierr := signals.Err(); ierr != nil {
			return 0, "", ierr
		}
		return 0, "", err
	}
	// After the copy, which can take minutes: the closure is asked of
	// the store as near to the sandbox's start as can be.
	ws.storePaths = storeView(ctx, c.Drv, b.env, append(mappingSources(facts.extra), b.shell), b.tools, log)

	// Spec: the sandbox the child is to build, from what the parts
	// above found. Nothing on the host changes between here and the
	// start.
	s := newSpec(c, b, facts, ws, log)

	// Run. A signal that came during the set-up ends the session before
	// a sandbox is started; one that comes while it runs has killed it.
	if ierr := signals.Err(); ierr != nil {
		return 0, "", ierr
	}
	status, err = run(ctx, s, u.ids, c.Stdin, c.Stdout, c.Stderr)
	if err != nil {
		return 0, "", err
	}
	if ierr := signals.Err(); ierr != nil {
		return 0, "", ierr
	}
	// Before the deferred clean-up removes the copy.
	if c.Changed != nil {
		reportChanges(b.dir, ws.dir.build(), ws.notCopied, c.Changed, log)
	}
	return status, "", nil
}

// loadCommand is the shell code that recreates the build's environment:
// `source /build/env-vars`, preceded for structured-attrs builds by
// .attrs.sh. The attributes come first, as in Nix's src/nix/get-env.sh
// and nixpkgs' pkgs/stdenv/generic/default-builder.sh, which source
// .attrs.sh before anything else; env-vars, written when the build
// failed, reflects the later state and wins.
func loadCommand(hostBuildDir, buildDir string) string {
	load := "source " + shquote.Quote(path.Join(buildDir, "env-vars"))
	if _, err := os.Lstat(filepath.Join(hostBuildDir, ".attrs.sh")); err == nil {
		load = "source " + shquote.Quote(path.Join(buildDir, ".attrs.sh")) + "; " + load
	}
	return load
}

// rcConfig is what the interactive shell's start-up file is made from.
type rcConfig struct {
	shell string
	// load sources env-vars (see loadCommand); tools puts the --with
	// tools first in PATH ("" for none).
	load, tools string
	buildDir    string
	// name is the derivation's name for the prompt.
	name  string
	color bool
	// stdenvSetup is $stdenv/setup when the build used nixpkgs' stdenv;
	// phases are its phases, for the hint.
	stdenvSetup string
	phases      []string
}

// interactiveShell returns the argv (and the bash rc file) for an
// interactive shell with env-vars sourced, in the directory the failing
// phase started in, with a prompt that says where it is.
func interactiveShell(c rcConfig) ([]string, string) {
	prompt := `[nbs ` + c.name + `] \w \$ `
	if c.color {
		prompt = `\[\e[1;32m\][nbs ` + c.name + `]\[\e[0m\] \w \$ `
	}
	if !strings.Contains(path.Base(c.shell), "bash") {
		cmd := c.load
		if c.tools != "" {
			cmd += "; " + c.tools
		}
		return []string{c.shell, "-c", cmd + `; exec "$0" -i`, c.shell}, ""
	}
	var rc strings.Builder
	rc.WriteString(c.load + "\n")
	if c.stdenvSetup != "" {
		// As nix-shell and nix develop do: stdenv's functions
		// (genericBuild, runPhase, the phases) in the shell. setup runs
		// `set -eu` and its hooks; a failure there would end the
		// interactive shell on the spot, so a subshell tries it first —
		// as a command of its own: in an if condition bash would ignore
		// the errexit that setup turns on.
		// setup resets PATH and other variables, so env-vars, which
		// has the failed build's state, is sourced again after it.
		setup := shquote.Quote(c.stdenvSetup)
		fmt.Fprintf(&rc, "( source %s ) >/dev/null 2>&1\n", setup)
		rc.WriteString("if [ \"$?\" = 0 ]; then\n")
		fmt.Fprintf(&rc, "source %s\n", setup)
		// nix-shell's clean-up for an interactive shell: no errexit,
		// nounset or nullglob; NIX_LOG_FD would print Nix's
		// structured-log lines (@nix {...}) into the terminal.
		rc.WriteString("set +e +u; shopt -u nullglob\n")
		rc.WriteString(c.load + "\n")
		rc.WriteString("unset NIX_LOG_FD\n")
		fmt.Fprintf(&rc, "printf '%%s\\n' %s %s >&2\n",
			shquote.Quote("nbs: stdenv is loaded: genericBuild runs every phase, runPhase NAME one of them (runPhase buildPhase)"),
			shquote.Quote("nbs: phases: "+strings.Join(c.phases, " ")))
		rc.WriteString("else\n")
		fmt.Fprintf(&rc, "echo %s >&2\n", shquote.Quote("nbs: warning: sourcing "+c.stdenvSetup+" fails here, so stdenv's functions are not loaded (source it to see why)"))
		rc.WriteString("fi\n")
	}
	if c.tools != "" {
		rc.WriteString(c.tools + "\n")
	}
	// Land in the directory the failing phase started in (env-vars'
	// PWD), as far as it exists in the copy, else in the source root
	// when the derivation names one, else in the build directory.
	rc.WriteString(`cd -- "$PWD" 2>/dev/null || { [ -n "${sourceRoot-}" ] && cd -- "$sourceRoot"; } 2>/dev/null || cd ` + shquote.Quote(c.buildDir) + "\n")
	rc.WriteString("PS1=" + shquote.Quote(prompt) + "\n")
	rc.WriteString("exec 3<&-\n")
	return []string{c.shell, "--rcfile", "/dev/fd/3", "-i"}, rc.String()
}

// defaultPhases is genericBuild's phase list when the derivation sets no
// phases (nixpkgs pkgs/stdenv/generic/setup.sh, without the empty
// pre*/post* hook lists).
var defaultPhases = []string{"unpackPhase", "patchPhase", "configurePhase", "buildPhase", "checkPhase", "installPhase", "fixupPhase", "installCheckPhase", "distPhase"}

// stdenvSetup returns $stdenv/setup when env-vars names a stdenv whose
// setup script exists on this machine.
func stdenvSetup(ev *nix.EnvVars) (string, bool) {
	s, ok := ev.Get("stdenv")
	if !ok || !nix.IsStorePath(s) {
		return "", false
	}
	setup := s + "/setup"
	if fi, err := os.Stat(setup); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return setup, true
}

// stdenvPhases are the phases genericBuild runs for this derivation.
func stdenvPhases(ev *nix.EnvVars) []string {
	if p, ok := ev.Get("phases"); ok && strings.TrimSpace(p) != "" {
		return strings.Fields(p)
	}
	return defaultPhases
}

// promptName is the derivation's name for the prompt.
func promptName(drv string, ev *nix.EnvVars) string {
	if n, ok := ev.Get("name"); ok && n != "" {
		return n
	}
	if drv != "" {
		return nix.DrvName(drv)
	}
	return "sandbox"
}
