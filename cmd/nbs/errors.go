package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
)

// exitStatus carries the status of the command that ran in the sandbox
// (or of nix-build): nbs exits with it and prints nothing.
type exitStatus struct{ code int }

func (e *exitStatus) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a mistake on the command line.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

// hintError adds what the user can do about err.
type hintError struct {
	err  error
	hint string
}

func (e *hintError) Error() string { return e.err.Error() }
func (e *hintError) Unwrap() error { return e.err }

// exitCode is the one place that turns errors into messages and exit
// statuses.
// helpFor is the command whose --help a usage error points to.
func exitCode(err error, stderr io.Writer, helpFor string) int {
	if err == nil {
		return 0
	}
	var st *exitStatus
	if errors.As(err, &st) {
		return st.code
	}
	var sig *interrupt.Error
	if errors.As(err, &sig) {
		fmt.Fprintf(stderr, "nbs: %v; the sandbox was ended\n", sig)
		return sig.ExitCode()
	}
	msg := "nbs: " + oneLine(err.Error())
	var ue *usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stderr, "%s (see '%s --help')\n", msg, helpFor)
		return 2
	}
	var he *hintError
	if errors.As(err, &he) {
		msg += "; " + he.hint
	} else if errors.Is(err, nix.ErrNotKeptDir) {
		msg += "; pass the directory named in Nix's 'keeping build directory' note"
	} else if errors.Is(err, nix.ErrNoEnvVarsYet) {
		msg += "; the build log says why it failed (with structured attrs on Nix before 2.13.4, nixpkgs' source-stdenv.sh finds no .attrs.sh: NixOS/nix#6736)"
	}
	fmt.Fprintln(stderr, msg)
	return 1
}

// oneLine keeps a message on one line: file names may contain newlines.
func oneLine(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r", `\r`), "\n", `\n`)
}

// isCobraUsage recognises cobra's own argument and flag errors.
func isCobraUsage(err error) bool {
	s := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "requires at least", "accepts ", "flag needs an argument", "invalid argument"} {
		if strings.HasPrefix(s, p) || strings.Contains(s, " "+p) {
			return true
		}
	}
	return false
}
