package sandbox

import (
	"strings"

	"github.com/nix-build-shell/nbs/sandbox/shquote"
)

// The replay of a bash builder stops at the failure in the builder's own
// process: bash reads BASH_ENV before the builder's script, and nbs
// points it at the hook below, on fd 3 (a memfd, like the interactive
// shell's rc). The hook removes its own traces at once and leaves only
// traps, so that until the stop the build sees (the complete list, also
// in the README):
//
//   - /proc/self/environ (the process's initial environment block) still
//     holds BASH_ENV=/dev/fd/3; the variable itself is unset (or set back
//     to the derivation's own value), so neither the shell nor any child
//     has it;
//   - `set -o errtrace` is on (so that the ERR trap reaches into the
//     phases' functions): `$-` contains E, `set -o` shows it;
//   - `trap -p` shows nbs's ERR and EXIT traps until the build sets its
//     own (stdenv's setup.sh replaces the EXIT one);
//   - with a terminal, stdin is /dev/null as in Nix, but the sandbox has
//     a controlling terminal (Nix's builder has none: /dev/tty opens);
//   - with --break, a DEBUG trap until genericBuild is called, then a
//     function __nbs_break, a variable __nbs_runPhase and one line at the
//     top of runPhase.
//
// The stop: when a command fails and errexit is about to end the
// builder's main shell (not a subshell, not a condition), the ERR trap
// runs in the failing function's context, its locals still alive. It
// writes what happened to replayReport in /tmp (the build is over by
// then) and either evaluates --run's script in a subshell of that very
// process, exiting with its status, or execs an interactive bash whose
// rc file (a pipe from a subshell of the same process) restores the
// state: every variable (exported or not, locals included), every
// function, the positional parameters ($0, $#, $@ of the failing
// function or script), shopt and set options (errexit and nounset stay off in the
// interactive shell, and it says so), traps and the directory. A builder
// that exits non-zero without errexit (an explicit exit N) stops in the
// EXIT trap as long as the build has not replaced it.

// replayReport begins the name of the file, in the sandbox's /tmp,
// where the hook says why it stopped: "failed STATUS PHASE" or "break
// PHASE".
const replayReport = ".nbs-replay"

// hookConfig is what the hook is made from.
type hookConfig struct {
	// script is --run's shell code; empty means an interactive shell.
	script string
	// breakPhase stops before that stdenv phase.
	breakPhase string
	tty        bool
	// bash is the builder, the bash that runs the interactive shell.
	bash string
	// bashEnv is the derivation's own BASH_ENV, when it has one.
	bashEnv string
	hasEnv  bool
	// name is the derivation's name, for the prompt.
	name  string
	color bool
	// reportDir/reportName is where the hook says why it stopped
	// (the sandbox's /tmp; replayReport and a random suffix).
	reportDir  string
	reportName string
	// terminal is the sandbox's terminal, with tty (its first pty,
	// /dev/pts/0, in Nix's sandbox; /dev/tty on the host's devpts).
	terminal string
	// stdin, when set, is what the command or shell reads at the stop
	// instead of the terminal or /dev/null (tests).
	stdin string
}

// skippedVars are bash's own variables, read-only or dynamic, which the
// restored shell has anyway.
const skippedVars = `__nbs_*|BASH|BASHOPTS|BASHPID|BASH_*|EUID|UID|PPID|SHELLOPTS|FUNCNAME|GROUPS|LINENO|RANDOM|SRANDOM|SECONDS|HISTCMD|DIRSTACK|PIPESTATUS|EPOCHREALTIME|EPOCHSECONDS|_|COMP_WORDBREAKS|PS1|PS2`

// bashHook returns the BASH_ENV file of a replayed bash builder.
func bashHook(c hookConfig) string {
	var h strings.Builder
	if c.hasEnv {
		h.WriteString("BASH_ENV=" + shquote.Quote(c.bashEnv) + "\n")
	} else {
		h.WriteString("unset BASH_ENV\n")
	}
	h.WriteString("exec 3<&-\n")
	if c.tty {
		h.WriteString("exec </dev/null\n")
	}
	h.WriteString("set -E\n")
	fail := stopCode(c, "failed")
	h.WriteString("trap -- " + shquote.Quote(`case $-:$BASHPID in *e*:"$$") `+fail+` ;; esac`) + " ERR\n")
	h.WriteString("trap -- " + shquote.Quote(`case $?:$BASHPID in 0:*) ;; *:"$$") `+stopCode(c, "exit")+` ;; esac`) + " EXIT\n")
	if c.breakPhase != "" {
		// Before the top-level call of genericBuild, stdenv's setup has
		// defined runPhase: a line at its top stops before the phase.
		wrap := `if __nbs_runPhase=$(declare -f runPhase); then ` +
			`__nbs_break() { ` + stopCode(c, "break") + `; }; ` +
			`eval "runPhase () { [[ \${1-} != ` + shquote.Quote(c.breakPhase) + ` ]] || __nbs_break \"\$@\"; ${__nbs_runPhase#*\{}"; ` +
			`fi; trap - DEBUG`
		h.WriteString("trap -- " + shquote.Quote(`case $BASH_COMMAND in genericBuild*) `+wrap+` ;; esac`) + " DEBUG\n")
	}
	if c.hasEnv {
		// What bash would have read at start-up.
		h.WriteString(`[ -r "$BASH_ENV" ] && . "$BASH_ENV"` + "\n")
	}
	return h.String()
}

// stopCode is the shell code that runs at the stop; kind is "failed"
// (in the ERR trap, $? the failing status), "exit" (in the EXIT trap)
// or "break" (in __nbs_break, called with runPhase's arguments, $1 the
// phase). The traps run with the positional parameters of the failing
// function, which --run's script and the interactive shell get.
func stopCode(c hookConfig, kind string) string {
	var s strings.Builder
	switch kind {
	case "exit":
		s.WriteString(`__nbs_status=$?; __nbs_phase=${curPhase-}; `)
		s.WriteString(`printf 'failed %s %s\n' "$__nbs_status" "$__nbs_phase" >` + shquote.Quote(c.reportDir+"/"+c.reportName) + ` 2>/dev/null; `)
		s.WriteString(`printf 'nbs: the replay failed%s: the builder exited with status %s\n' "${__nbs_phase:+ in $__nbs_phase}" "$__nbs_status" >&2; `)
	case "failed":
		s.WriteString(`__nbs_status=$?; __nbs_phase=${curPhase-}; __nbs_cmd=$BASH_COMMAND; `)
		s.WriteString(`printf 'failed %s %s\n' "$__nbs_status" "$__nbs_phase" >` + shquote.Quote(c.reportDir+"/"+c.reportName) + ` 2>/dev/null; `)
		s.WriteString(`printf 'nbs: the replay failed%s (exit %s) at: %s\n' "${__nbs_phase:+ in $__nbs_phase}" "$__nbs_status" "$__nbs_cmd" >&2; `)
	default:
		s.WriteString(`__nbs_status=0; __nbs_phase=$1; `)
		s.WriteString(`printf 'break %s\n' "$__nbs_phase" >` + shquote.Quote(c.reportDir+"/"+c.reportName) + ` 2>/dev/null; `)
		s.WriteString(`printf 'nbs: stopped before %s (--break)\n' "$__nbs_phase" >&2; `)
	}
	// The build's traps, without nbs's: $(trap -p) shows the shell's.
	s.WriteString(`__nbs_traps=; for __nbs_s in EXIT ERR RETURN HUP INT QUIT TERM USR1 USR2 PIPE ALRM CHLD; do __nbs_t=$(trap -p $__nbs_s); [[ $__nbs_t == *__nbs_* ]] || __nbs_traps+=$__nbs_t$'\n'; done; `)
	// The sandbox's terminal is the first pty of its own devpts.
	in, out := "</dev/null", ""
	if c.tty {
		t := c.terminal
		if t == "" {
			t = "/dev/pts/0"
		}
		in, out = "<"+shquote.Quote(t), " >"+shquote.Quote(t)+" 2>&1"
	}
	if c.stdin != "" {
		in = "<" + shquote.Quote(c.stdin)
	}
	if c.script != "" {
		// In a subshell of the stopped process: everything it had,
		// without ending it before nbs is told the status.
		// A status tested, so that errexit does not end the shell here
		// with the build's EXIT trap still set.
		s.WriteString(`__nbs_status=0; ( ` + restoreRunPhase + `set +E; eval ` + shquote.Quote(c.script) + ` ) ` + in + ` || __nbs_status=$?; trap - EXIT; exit "$__nbs_status"`)
		return s.String()
	}
	// Not $BASH: Nix's argv[0] is the builder's base name, which
	// bash does not find in PATH, so $BASH is the passwd shell
	// (/noshell).
	// The interactive shell gets the terminal whatever the build did
	// with its stdout and stderr.
	s.WriteString(`exec ` + shquote.Quote(c.bash) + ` --rcfile <(` + dumpCode(c) + `) -i ` + in + out)
	return s.String()
}

// restoreRunPhase undoes --break's change of runPhase.
const restoreRunPhase = `if [[ -n ${__nbs_runPhase-} ]]; then eval "$__nbs_runPhase"; unset -f __nbs_break; fi; `

// dumpCode prints the rc file that restores the stopped shell's state;
// it runs in a subshell of the stopped process.
func dumpCode(c hookConfig) string {
	prompt := `[nbs replay ` + c.name + `] \w \$ `
	if c.color {
		prompt = `\[\e[1;33m\][nbs replay ` + c.name + `]\[\e[0m\] \w \$ `
	}
	var d strings.Builder
	// nbs's own helpers go; runPhase gets its own body back.
	d.WriteString(restoreRunPhase)
	d.WriteString(`__nbs_names=(); for __nbs_c in {A..Z} {a..z} _; do eval "__nbs_names+=(\"\${!${__nbs_c}@}\")"; done; `)
	d.WriteString(`for __nbs_n in "${__nbs_names[@]}"; do case $__nbs_n in ` + skippedVars + `) continue;; esac; declare -p "$__nbs_n" 2>/dev/null; done; `)
	d.WriteString(`declare -f; `)
	d.WriteString(`shopt -p 2>/dev/null | while read -r __nbs_l; do case $__nbs_l in *' login_shell') ;; *) printf '%s\n' "$__nbs_l";; esac; done; `)
	d.WriteString(`set +o | while read -r __nbs_l; do case $__nbs_l in *' errexit'|*' nounset'|*' errtrace'|*' emacs'|*' vi'|*' history'|*' monitor'|*' interactive-comments') ;; *) printf '%s\n' "$__nbs_l";; esac; done; `)
	d.WriteString(`printf '%s' "$__nbs_traps"; `)
	d.WriteString(`printf 'cd -- %q\n' "$PWD"; `)
	// The positional parameters of the failing function (or of the
	// builder's script): the trap runs with them; $0 through
	// BASH_ARGV0 (bash 5; before it, $0 stays the shell's).
	d.WriteString(`printf 'set --'; (( $# == 0 )) || printf ' %q' "$@"; printf '\n'; `)
	d.WriteString(`(( BASH_VERSINFO[0] < 5 )) || printf 'BASH_ARGV0=%q\n' "$0"; `)
	d.WriteString(`printf 'PS1=%q\n' ` + shquote.Quote(prompt) + `; `)
	d.WriteString(`case $- in *e*) printf '%s\n' "echo 'nbs: the build ran with errexit (set -e), which is off here so that a failing command does not end the shell' >&2";; esac; `)
	d.WriteString(`printf '%s\n' "echo 'nbs: this is the build'\\''s shell as it stopped: its variables, functions, options, traps and directory' >&2"`)
	return d.String()
}
