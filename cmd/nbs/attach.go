package main

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	"github.com/spf13/cobra"
)

// AttachOptions is what `nbs attach` was asked to do.
type AttachOptions struct {
	f *Factory
	// Target names the build: a derivation name, a .drv path, an
	// output path or the builder's PID; "" for the only one running.
	Target  string
	Command []string
	// With are the --with arguments: store paths or nixpkgs attributes.
	With []string
	// Builds lists the running builds; tests replace it.
	Builds func() ([]sandbox.Build, error)
	Now    func() time.Time
}

func newCmdAttach(f *Factory) *cobra.Command {
	opts := &AttachOptions{f: f, Builds: sandbox.RunningBuilds, Now: time.Now}
	cmd := &cobra.Command{
		Use:   "attach [flags] [TARGET [CMD [ARG...]]]",
		Short: "Step into a build that is still running, or hung",
		Long: `Enter the live sandbox of a Nix build that is running now: a build
that hangs (a test suite that deadlocks, a step waiting for something
that never comes) can be looked at while it hangs, without changing the
derivation.

TARGET is the derivation's name (as 'nbs list' shows it), its .drv path,
an output path, or the PID of its builder. Without TARGET nbs lists the
builds running on this machine and, when there is exactly one, enters it.

nbs joins the build's user, mount, PID, network, UTS, IPC and cgroup
namespaces, its root and its builder's current directory, as the build's
user (uid 1000 inside), with the builder's environment as it started,
no_new_privs, nbs's own seccomp filter and no capabilities. The shell
has a terminal of its own from the build's /dev/pts: nothing typed
inside reaches yours. CMD runs there instead of a shell (looked up on
the build's PATH) and nbs exits with its status.

The build is never signalled, stopped or changed, unless you change its
files yourself; leaving the shell leaves it running. When the build ends
while you are inside, the kernel ends everything in its PID namespace,
the shell too, and nbs says so.

--with adds tools the build does not have, such as gdb or strace: a store
path (or ./result) with its closure, or a nixpkgs attribute, as for nbs
shell. They appear, read-only, in /nix/store of the attached command's
own copy of the build's mount namespace, their bin/ first in PATH; the
build itself never sees them. (An output the build creates in /nix/store
after you attached is not visible in that copy.)

Entering another user's namespaces needs root: run it with sudo. It works
for builds through the daemon and for root's own builds.`,
		Example: `  sudo nbs attach                       # the builds running; enter the only one
  sudo nbs attach hello-2.12            # by name
  sudo nbs attach /nix/store/...-hello-2.12.drv
  sudo nbs attach 12345 ps -ef          # by the builder's PID; run one command
  sudo nbs attach --with gdb --with strace hello-2.12
  sudo nbs attach hello-2.12 sh -c 'ls /build; cat /proc/1/cmdline'`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				opts.Target, opts.Command = args[0], args[1:]
			}
			return attachRun(cmd, opts)
		},
	}
	// Everything after TARGET belongs to the command.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringArrayVar(&opts.With, "with", nil, "add `STOREPATH` (or a nixpkgs attribute) to the attached command's view of the build and its bin/ to PATH; the build does not see it; repeatable")
	return cmd
}

func attachRun(cmd *cobra.Command, opts *AttachOptions) error {
	f := opts.f
	if !sandbox.CanAttach() {
		return attachError(opts, sandbox.ErrNeedRoot)
	}
	with, err := resolveWith(cmd.Context(), opts.With, nixpkgsBuild)
	if err != nil {
		if h := withHint(err); h != "" {
			return &hintError{err, h}
		}
		return err
	}
	builds, err := opts.Builds()
	if err != nil {
		return attachError(opts, err)
	}
	if opts.Target == "" {
		printBuilds(f.Stderr, builds, opts.Now())
	}
	b, err := sandbox.FindBuild(builds, opts.Target)
	if err != nil {
		return err
	}
	if opts.Target == "" {
		fmt.Fprintf(f.Stderr, "nbs: entering %s (PID %d)\n", buildName(b), b.PID)
	}
	status, err := sandbox.Attach(cmd.Context(), sandbox.AttachConfig{
		Build:   b,
		Command: opts.Command,
		With:    with,
		Stdin:   f.Stdin,
		Stdout:  f.Stdout,
		Stderr:  f.Stderr,
		Log:     f.Log(),
	})
	var sig *interrupt.Error
	if errors.As(err, &sig) {
		// Only what nbs started in the build was ended.
		fmt.Fprintf(f.Stderr, "nbs: %v; left %s, which runs on\n", sig, buildName(b))
		return &exitStatus{sig.ExitCode()}
	}
	if errors.Is(err, sandbox.ErrBuildEnded) {
		fmt.Fprintf(f.Stderr, "nbs: %s: %v; leaving\n", buildName(b), err)
		return &exitStatus{status}
	}
	if err != nil {
		return attachError(opts, err)
	}
	return &exitStatus{status}
}

func attachError(opts *AttachOptions, err error) error {
	if errors.Is(err, sandbox.ErrNeedRoot) {
		cmd := "sudo nbs attach"
		for _, a := range append([]string{opts.Target}, opts.Command...) {
			if a != "" {
				cmd += " " + shquote.Paste(a)
			}
		}
		return &hintError{err, "run " + cmd}
	}
	return err
}

func buildName(b sandbox.Build) string {
	if b.Name == "" {
		return "?"
	}
	return b.Name
}

// printBuilds shows the running builds, oldest first.
func printBuilds(w io.Writer, builds []sandbox.Build, now time.Time) {
	if len(builds) == 0 {
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUNNING FOR\tPID\tNAME\tDRV\tDOING")
	for _, b := range builds {
		drv := b.Drv
		if drv == "" {
			drv = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", age(now, b.Started), strconv.Itoa(b.PID), oneLine(buildName(b)), oneLine(drv), oneLine(strings.TrimSpace(b.Doing)))
	}
	tw.Flush()
}
