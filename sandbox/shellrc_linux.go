package sandbox

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
)

// loadCommand is the shell code that recreates the build's environment:
// `source /build/env-vars`, preceded for structured-attrs builds by
// .attrs.sh, the way nixpkgs' builders read it (NIX-SANDBOX-HISTORY.md
// §7): the attributes first, then env-vars, which reflects later state.
func loadCommand(hostBuildDir, buildDir string) string {
	load := "source " + shQuote(path.Join(buildDir, "env-vars"))
	if _, err := os.Lstat(filepath.Join(hostBuildDir, ".attrs.sh")); err == nil {
		load = "source " + shQuote(path.Join(buildDir, ".attrs.sh")) + "; " + load
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
		setup := shQuote(c.stdenvSetup)
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
			shQuote("nbs: stdenv is loaded: genericBuild runs every phase, runPhase NAME one of them (runPhase buildPhase)"),
			shQuote("nbs: phases: "+strings.Join(c.phases, " ")))
		rc.WriteString("else\n")
		fmt.Fprintf(&rc, "echo %s >&2\n", shQuote("nbs: warning: sourcing "+c.stdenvSetup+" fails here, so stdenv's functions are not loaded (source it to see why)"))
		rc.WriteString("fi\n")
	}
	if c.tools != "" {
		rc.WriteString(c.tools + "\n")
	}
	// Land in the directory the failing phase started in (env-vars'
	// PWD), as far as it exists in the copy, else in the source root
	// when the derivation names one, else in the build directory.
	rc.WriteString(`cd -- "$PWD" 2>/dev/null || { [ -n "${sourceRoot-}" ] && cd -- "$sourceRoot"; } 2>/dev/null || cd ` + shQuote(c.buildDir) + "\n")
	rc.WriteString("PS1=" + shQuote(prompt) + "\n")
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

// shQuote quotes s for a POSIX shell.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
