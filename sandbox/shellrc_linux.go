package sandbox

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
)

// loadCommand is the shell code that recreates the build's environment:
// `source /build/env-vars`, preceded for structured-attrs builds by
// .attrs.sh, the way nixpkgs' builders read it (nixpkgs
// pkgs/stdenv/generic/source-stdenv.sh; Nix's src/nix/get-env.sh does
// the same): the attributes first, then env-vars, which reflects later
// state.
func loadCommand(hostBuildDir, buildDir string) string {
	load := "source " + shquote.Quote(path.Join(buildDir, "env-vars"))
	if _, err := os.Lstat(filepath.Join(hostBuildDir, ".attrs.sh")); err == nil {
		load = "source " + shquote.Quote(path.Join(buildDir, ".attrs.sh")) + "; " + load
	}
	return load
}

// rcConfig is what the shell's start-up code is made from.
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
	// failedPhase the phase its log says it failed in ("" unknown).
	stdenvSetup string
	failedPhase string
}

// interactiveShell returns the argv (and the bash rc file) for an
// interactive shell with the build's environment, in the directory the
// failing phase started in, with a prompt that says where it is.
func interactiveShell(c rcConfig) ([]string, string) {
	prompt := `[nbs ` + c.name + `] \w \$ `
	if c.color {
		prompt = `\[\e[1;32m\][nbs ` + c.name + `]\[\e[0m\] \w \$ `
	}
	if !isBash(c.shell) {
		cmd := c.load
		if c.tools != "" {
			cmd += "; " + c.tools
		}
		return []string{c.shell, "-c", cmd + `; exec "$0" -i`, c.shell}, ""
	}
	var rc strings.Builder
	rc.WriteString(c.environment(true))
	rc.WriteString("PS1=" + shquote.Quote(prompt) + "\n")
	rc.WriteString("exec 3<&-\n")
	return []string{c.shell, "--rcfile", "/dev/fd/3", "-i"}, rc.String()
}

// script returns the argv for shell code run in the same environment as
// the interactive shell, from the same directory (nbs build --run).
func script(c rcConfig, code string) []string {
	if !isBash(c.shell) {
		pre := c.load
		if c.tools != "" {
			pre += "; " + c.tools
		}
		return []string{c.shell, "-c", pre + "\n" + code}
	}
	return []string{c.shell, "-c", c.environment(false) + code}
}

// command returns the argv that runs argv[0] with the build's
// environment (env-vars only, no stdenv functions) from the build
// directory, where the builder started: the form for scripts and other
// programs (nbs shell DIR CMD…). PWD, which env-vars sets to the
// directory the failing phase started in, is made to match.
func command(c rcConfig, argv []string) []string {
	pre := c.load
	if c.tools != "" {
		pre += "; " + c.tools
	}
	pre += "; PWD=" + shquote.Quote(c.buildDir)
	return append([]string{c.shell, "-c", pre + `; exec "$@"`, "--"}, argv...)
}

func isBash(shell string) bool { return strings.Contains(path.Base(shell), "bash") }

// environment is the bash code that recreates the failed build's state
// at the start of its failing phase, then cds to where that phase began.
//
// Without stdenv that is env-vars (after .attrs.sh). With stdenv, its
// setup is sourced too, as nix-shell does, for its functions and the
// non-exported state setup hooks leave (hook arrays). Sourcing setup has
// side effects that must not reach the shell, each undone here:
//   - dumpVars would overwrite /build/env-vars: noDumpEnvVars=1, kept;
//   - it resets PATH and re-runs the setup hooks, which prepend and
//     append to flags (NIX_LDFLAGS's -rpath, NIX_CFLAGS_COMPILE) and
//     PATH: env-vars, the state when the failing phase began, is
//     sourced again afterwards, so every exported variable is the
//     build's;
//   - it looks for .attrs.sh in the current directory: it is sourced
//     from the build directory;
//   - its EXIT trap would run failureHook or exitHook when the shell
//     ends: removed;
//   - set -eu, pipefail, nullglob: off in the interactive shell (as
//     nix-shell leaves them); the builder's set is on again inside
//     runPhase, resumeBuild and genericBuild (stdenvCommands).
//
// A failure while sourcing setup would end the shell on the spot (setup
// turns errexit on), so a subshell tries it first, as a command of its
// own: in an if condition bash would ignore that errexit. Its output is
// hidden, and its EXIT trap removed once setup is through, so that the
// trial runs no exitHook.
func (c rcConfig) environment(interactive bool) string {
	var b strings.Builder
	b.WriteString(c.load + "\n")
	if c.stdenvSetup != "" {
		setup := shquote.Quote(c.stdenvSetup)
		top := shquote.Quote(c.buildDir)
		b.WriteString("__nbsPhaseDir=$PWD\n")
		fmt.Fprintf(&b, "( cd %s || exit; noDumpEnvVars=1; source %s; trap - EXIT ) >/dev/null 2>&1\n", top, setup)
		b.WriteString("if [ \"$?\" = 0 ]; then\n")
		fmt.Fprintf(&b, "cd %s\nnoDumpEnvVars=1\nsource %s >/dev/null\n", top, setup)
		b.WriteString("trap - EXIT\nset +e +u\nshopt -u nullglob\n")
		b.WriteString(c.load + "\n")
		b.WriteString(stdenvCommands)
		fmt.Fprintf(&b, "__nbsFailedPhase=%s __nbsTop=%s\n", shquote.Quote(c.failedPhase), top)
		if interactive {
			b.WriteString("__nbsHint\n")
		}
		b.WriteString("else\n")
		fmt.Fprintf(&b, "echo %s >&2\n", shquote.Quote("nbs: warning: sourcing "+c.stdenvSetup+" fails here, so stdenv's functions are not loaded (source it to see why)"))
		b.WriteString("fi\n")
		b.WriteString("PWD=$__nbsPhaseDir\n")
	}
	if c.tools != "" {
		b.WriteString(c.tools + "\n")
	}
	// Land in the directory the failing phase started in (env-vars'
	// PWD), as far as it exists in the copy, else in the source root
	// when the derivation names one, else in the build directory.
	// cd sets OLDPWD, which env-vars gave the build's value.
	b.WriteString(`if [ -n "${OLDPWD+set}" ]; then __nbsOLDPWD=$OLDPWD; fi` + "\n")
	b.WriteString(`cd -- "$PWD" 2>/dev/null || { [ -n "${sourceRoot-}" ] && cd -- "$sourceRoot"; } 2>/dev/null || cd ` + shquote.Quote(c.buildDir) + "\n")
	b.WriteString(`if [ -n "${__nbsOLDPWD+set}" ]; then OLDPWD=$__nbsOLDPWD; unset __nbsOLDPWD; fi` + "\n")
	return b.String()
}

// stdenvCommands replace setup.sh's runPhase and genericBuild in the
// shell so that they behave as in the builder, which ran them under
// bash -e: a failing command ends the phase with its status, and no
// later phase runs. Each runs in a subshell (an error must not end the
// interactive shell), with the options the builder had after setup:
// errexit, pipefail, inherit_errexit, nullglob, no nounset. Inside it,
// setup's own runPhase and genericBuild are back, so phases run one
// after the other in one state, as in the build. What a subshell
// changes (variables, the directory) is gone when it ends.
//
// resumeBuild PHASE runs PHASE and the phases after it (genericBuild's
// list), from the directory the failing phase started in: the rest of
// the build. genericBuild runs every phase from the build directory, as
// the builder did.
const stdenvCommands = `__nbsCopyFn() { local f; f=$(declare -f "$1") && eval "$2${f#"$1"}"; }
__nbsCopyFn runPhase __nbsStdenvRunPhase
__nbsCopyFn genericBuild __nbsStdenvGenericBuild
__nbsAsBuilder() {
    (
        set -e +u -o pipefail
        shopt -s nullglob inherit_errexit
        __nbsCopyFn __nbsStdenvRunPhase runPhase
        __nbsCopyFn __nbsStdenvGenericBuild genericBuild
        "$@"
    )
}
# The phases genericBuild runs (nixpkgs' setup.sh): phases, else the
# standard ones with the derivation's extra lists at their places.
__nbsPhases() {
    local w ref list=${phases[*]:-}
    if [ -z "$list" ]; then
        for w in prePhases unpackPhase patchPhase preConfigurePhases configurePhase preBuildPhases buildPhase \
            checkPhase preInstallPhases installPhase preFixupPhases fixupPhase installCheckPhase preDistPhases \
            distPhase postPhases; do
            case $w in
            *Phases) ref="$w[*]"; list+=" ${!ref:-}" ;;
            *) list+=" $w" ;;
            esac
        done
    fi
    echo $list
}
__nbsResume() {
    local from=$1 p go=
    if [ -f "${buildCommandPath:-}" ] || [ -n "${buildCommand:-}" ]; then
        echo "nbs: this build runs a buildCommand, not phases; genericBuild runs it" >&2
        return 2
    fi
    for p in $(__nbsPhases); do
        if [ "$p" = "$from" ]; then go=1; fi
        if [ -n "$go" ]; then runPhase "$p"; fi
    done
    if [ -z "$go" ]; then
        echo "nbs: $from is not one of this build's phases: $(__nbsPhases)" >&2
        return 2
    fi
}
__nbsFromTop() { cd -- "$__nbsTop" || exit; genericBuild; }
__nbsFromPhase() { cd -- "$__nbsPhaseDir" || exit; __nbsResume "$1"; }
runPhase() { __nbsAsBuilder runPhase "$@"; }
genericBuild() { __nbsAsBuilder __nbsFromTop; }
resumeBuild() {
    local from=${1:-$__nbsFailedPhase}
    if [ -z "$from" ]; then
        echo "nbs: the failed phase is not known (no build log); say which: resumeBuild PHASE" >&2
        return 2
    fi
    __nbsAsBuilder __nbsFromPhase "$from"
}
__nbsHint() {
    local f=$__nbsFailedPhase r=resumeBuild
    [ -n "$f" ] || r+=" PHASE"
    {
        echo "nbs: stdenv is loaded, with the environment the failed phase began with"
        if [ -n "$f" ]; then echo "nbs: the build failed in $f; its phases: $(__nbsPhases)"
        else echo "nbs: its phases: $(__nbsPhases)"; fi
        printf 'nbs:   %-22s %s\n' "runPhase ${f:-NAME}" "runs that phase again as the builder did (bash -e; nothing after it runs)" \
            "$r" "runs ${f:-PHASE} and every phase after it, from where it began" \
            genericBuild "runs the whole build again from $__nbsTop"
    } >&2
}
`

// buildVars are the build's variables where the build had them:
// env-vars (the exported ones when the failing phase began) and, for a
// structured-attrs build, .attrs.json, where its attributes are (stdenv,
// name, src, outputHash…: never in the environment, so not in env-vars).
type buildVars struct {
	ev    *nix.EnvVars
	attrs *nix.StructuredAttrs // nil without structured attrs
}

// readBuildVars reads .attrs.json beside env-vars when there is one.
func readBuildVars(buildDir string, ev *nix.EnvVars) (buildVars, error) {
	v := buildVars{ev: ev}
	p := filepath.Join(buildDir, ".attrs.json")
	if _, err := os.Lstat(p); err != nil {
		return v, nil
	}
	a, err := nix.ReadStructuredAttrs(p)
	if err != nil {
		return v, err
	}
	v.attrs = a
	return v, nil
}

// get returns the variable from env-vars, else the string attribute.
func (v buildVars) get(name string) (string, bool) {
	if s, ok := v.ev.Get(name); ok {
		return s, true
	}
	if v.attrs != nil {
		return v.attrs.String(name)
	}
	return "", false
}

// outputs returns the paths of the build's outputs.
func (v buildVars) outputs() []string {
	var paths []string
	if v.attrs != nil {
		for _, p := range v.attrs.Outputs() {
			paths = append(paths, p)
		}
		return paths
	}
	names, ok := v.ev.Get("outputs")
	if !ok {
		names = "out"
	}
	for _, o := range strings.Fields(names) {
		if p, ok := v.ev.Get(o); ok {
			paths = append(paths, p)
		}
	}
	return paths
}

// values are every value the build had, for the store paths in them.
func (v buildVars) values() []string {
	var s []string
	for _, e := range v.ev.Vars {
		s = append(s, e.Value)
	}
	if v.attrs != nil {
		s = append(s, v.attrs.Strings()...)
	}
	return s
}

// stdenvSetup returns $stdenv/setup when the build names a stdenv whose
// setup script exists on this machine.
func stdenvSetup(v buildVars) (string, bool) {
	s, ok := v.get("stdenv")
	if !ok || !nix.IsStorePath(s) {
		return "", false
	}
	setup := s + "/setup"
	if fi, err := os.Stat(setup); err != nil || !fi.Mode().IsRegular() {
		return "", false
	}
	return setup, true
}

// promptName is the derivation's name for the prompt.
func promptName(drv string, v buildVars) string {
	if n, ok := v.get("name"); ok && n != "" {
		return n
	}
	if drv != "" {
		return nix.DrvName(drv)
	}
	return "sandbox"
}
