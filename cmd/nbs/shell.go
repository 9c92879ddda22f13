package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/nix-build-shell/nbs/sandbox/diff"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	"github.com/spf13/cobra"
)

// ShellOptions is what `nbs shell` was asked to do.
type ShellOptions struct {
	f       *Factory
	Dir     string
	Command []string
	// Run is shell code to run in the interactive shell's environment
	// and directory instead of a shell (--run).
	Run  string
	Keep bool
	// Copy makes /build a full copy instead of a copy-on-write view.
	Copy bool
	Drv  string
	// With are the --with arguments: store paths or nixpkgs attributes.
	With []string
	// Last enters the newest kept build directory (nbs list's first).
	Last bool
	// NoSandbox: the build ran with sandbox = false (--no-sandbox).
	NoSandbox bool
}

// newCmdShell is `nbs shell`. runF, when not nil, is called with the
// parsed options instead of shellRun: TestShellArgs checks the parsing
// that way. (The other commands have no such seam: no test needs one.)
func newCmdShell(f *Factory, runF func(*ShellOptions) error) *cobra.Command {
	opts := &ShellOptions{f: f}
	cmd := &cobra.Command{
		Use:   "shell [flags] DIR [CMD [ARG...]]",
		Short: "Enter the sandbox of a failed build kept by nix-build --keep-failed",
		Long: `Re-create Nix's build sandbox around a copy of the kept build directory DIR
and run CMD there, or an interactive shell when no CMD is given.

CMD runs as   $SHELL -c 'source /build/env-vars; exec "$@"' -- CMD ARG...
with SHELL taken from DIR/env-vars. nbs exits with CMD's status (128+N if
a signal N killed it). DIR is never modified: the sandbox works on a
private copy-on-write view of it (or, with --copy, a copy), removed when
the sandbox ends (see --keep).

DIR may also be the parent of the kept directory where newer Nix nests it
(/nix/var/nix/builds/nix-PID-N holding build/). When the kept files belong
to Nix's build user and are unreadable (mode 0600), run nbs with sudo: it
copies them as root, hands the copy to you and still runs the sandbox as
you, never as root.

The interactive shell starts in the directory the failing phase started
in (env-vars' PWD), else in /build; its prompt names the derivation:
[nbs wttr-1.0] /build/source $. When the build used nixpkgs' stdenv, the
shell also has stdenv's functions and hooks, with every exported variable
as the failing phase began with it, and three commands that run phases
as the builder did (bash -e, in a subshell, nothing after a failure):
runPhase NAME (one phase), resumeBuild (the failed phase and those after
it) and genericBuild (the whole build, from /build). --run CMD runs the
shell code CMD in that same environment and directory and exits with its
status.

--with adds tools the build did not have: a store path (or ./result) with
its closure, read-only, its bin/ first in PATH; or a nixpkgs attribute
such as gdb, built with nix-build '<nixpkgs>' -A gdb when <nixpkgs> is on
NIX_PATH. The rest of the sandbox stays as Nix made it.

When the sandbox ends, nbs says whether files in /build changed
("nbs: /build changed: 2 files changed, 1 added, 0 removed"); with --keep
what the session made of /build stays (a view keeps only its changes,
over DIR; a copy the copy): 'nbs diff DIR' shows the changes as a patch,
'nbs shell KEPT' enters the result. --last
enters the newest kept build directory ('nbs list' shows them all).
Copying a big directory shows a progress bar when stderr is a terminal.

A build that ran without Nix's sandbox (sandbox = false) is entered the
way it ran, on the host, when Nix's sandbox setting says so or
--no-sandbox does: never because the kept env-vars, which the build
wrote, names a host build directory.`,
		Example: `  nbs shell /tmp/nix-build-wttr.drv-0
  nbs shell /tmp/nix-build-wttr.drv-0 make -j1
  nbs shell --run 'runPhase buildPhase' /tmp/nix-build-wttr.drv-0
  nbs shell /nix/var/nix/builds/nix-1234-5678/build -- ls -la
  sudo nbs shell /tmp/nix-build-hello.drv-0
  nbs shell --last
  nbs shell --with /nix/store/...-gdb-14.2 --with strace /tmp/nix-build-wttr.drv-0
  nbs shell --keep /tmp/nix-build-wttr.drv-0 && nbs diff /tmp/nix-build-wttr.drv-0`,
		ValidArgsFunction: completeKeptDirs,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 && !opts.Last {
				return &usageError{errors.New("shell: missing DIR, the kept build directory")}
			}
			if opts.Run != "" && (len(args) > 1 || opts.Last && len(args) > 0) {
				return &usageError{errors.New("shell: --run CMD and a command after DIR exclude each other")}
			}
			if opts.Run != "" && cmd.Flags().Changed("remote") {
				return &usageError{errors.New("shell: --run does not work with --remote; give the command after DIR")}
			}
			if opts.NoSandbox && cmd.Flags().Changed("remote") {
				return &usageError{errors.New("shell: --no-sandbox does not work with --remote (the builder's own sandbox setting decides there)")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if opts.Last {
				// No DIR: every argument belongs to the command.
				opts.Command = args
			} else {
				opts.Dir, opts.Command = args[0], args[1:]
			}
			if runF != nil {
				return runF(opts)
			}
			return shellRun(cmd, opts)
		},
	}
	// Everything after DIR belongs to the command: nbs shell dir ls -la.
	cmd.Flags().SetInterspersed(false)
	addRemoteFlag(cmd, opts) // --remote URI: DIR is on a builder (remote.go)
	cmd.Flags().BoolVar(&opts.Copy, "copy", false, copyFlagUsage)
	cmd.Flags().BoolVar(&opts.Keep, "keep", false, "keep the sandbox's /build after it ends (a copy, or a view's changes only) and print its path ('nbs diff DIR' compares it, 'nbs shell PATH' enters it)")
	cmd.Flags().StringArrayVar(&opts.With, "with", nil, "add `STOREPATH` (or a nixpkgs attribute) to the sandbox and its bin/ to PATH; repeatable")
	cmd.Flags().StringVar(&opts.Run, "run", "", "run the shell code `CMD` in the interactive shell's environment and directory (stdenv's commands too) and exit with its status")
	cmd.Flags().BoolVar(&opts.Last, "last", false, "enter the newest kept build directory (see 'nbs list'); no DIR then")
	cmd.Flags().BoolVar(&opts.NoSandbox, "no-sandbox", false, "enter it as a build with sandbox = false ran, on the host (nbs tells by itself from Nix's sandbox setting, not from the kept env-vars)")
	return cmd
}

func shellRun(cmd *cobra.Command, opts *ShellOptions) error {
	f := opts.f
	with, err := prepareShell(cmd.Context(), opts, nix.DefaultKeptSearch(), nixpkgsBuild)
	if err != nil {
		return err
	}
	status, kept, err := enterLocal(cmd.Context(), f, sandbox.Config{
		Dir:     opts.Dir,
		Command: opts.Command,
		Script:  opts.Run,
		Keep:    opts.Keep,
		Entry:   entryMode(opts.Copy),
		Drv:     opts.Drv,
		With:    with,
		Sandbox: noSandbox(opts.NoSandbox),
	})
	if kept != "" {
		printKept(f, kept)
	}
	if err != nil {
		return err
	}
	return &exitStatus{status}
}

// printKept says where the session's /build was kept: a copy, or the
// changes a copy-on-write view made, over the directory it entered.
func printKept(f *Factory, kept string) {
	k, err := sandbox.ReadKeptCopy(kept)
	if err != nil || k.View == nil {
		fmt.Fprintf(f.Stderr, "nbs: kept the sandbox's copy of /build in %s\n", kept)
		return
	}
	fmt.Fprintf(f.Stderr, "nbs: kept the sandbox's changes to /build in %s (over %s: 'nbs shell %s' enters the result, 'nbs diff %s' shows the changes)\n",
		kept, k.Origin, shquote.Paste(kept), shquote.Paste(k.Origin))
}

// enterLocal enters a kept directory on this machine on the CLI's
// terminal, with its logger, the copy's progress bar and the report of
// what changed; a directory only root can read gets the sudo hint.
func enterLocal(ctx context.Context, f *Factory, c sandbox.Config) (status int, kept string, err error) {
	c.Stdin, c.Stdout, c.Stderr = f.Stdin, f.Stdout, f.Stderr
	c.Log = f.Log()
	c.Progress = newCopyProgress(f.Stderr)
	c.Changed = printChanged(f)
	status, kept, err = sandbox.Enter(ctx, c)
	if errors.Is(err, sandbox.ErrUnreadable) {
		err = &hintError{err, unreadableHint(c.Script, c.Dir, c.Drv, c.Command, c.Sandbox == "false")}
	}
	return status, kept, err
}

// sudoShell is the nbs shell command that enters dir as the user asked
// (with --run CMD, or CMD ARG…; with --no-sandbox for a build that ran
// without the sandbox), for the hint to run it with sudo.
func sudoShell(run, dir string, command []string, unsandboxed bool) string {
	s := "nbs shell "
	if unsandboxed {
		s += "--no-sandbox "
	}
	if run != "" {
		s += "--run " + shquote.Paste(run) + " "
	}
	s += shquote.Paste(dir)
	for _, a := range command {
		s += " " + shquote.Paste(a)
	}
	return s
}

// printChanged reports, when the sandbox ends, what changed in /build.
func printChanged(f *Factory) func(diff.Summary) {
	return func(s diff.Summary) {
		fmt.Fprintf(f.Stderr, "nbs: /build changed: %s\n", s)
	}
}

const copyFlagUsage = "make /build a full copy of the kept directory instead of a copy-on-write view"

// entryMode is how /build is made: a copy with --copy, else what
// NBS_ENTRY_MODE names (copy, overlay, fuse: the tests run in each),
// else the cheapest the machine allows.
func entryMode(copy bool) string {
	if copy {
		return sandbox.EntryCopy
	}
	return os.Getenv("NBS_ENTRY_MODE")
}
