package main

import (
	"errors"
	"fmt"

	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/spf13/cobra"
)

// ShellOptions is what `nbs shell` was asked to do.
type ShellOptions struct {
	f       *Factory
	Dir     string
	Command []string
	Keep    bool
	Drv     string
}

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
private copy that is removed when the sandbox ends (see --keep).

DIR may also be the parent of the kept directory where newer Nix nests it
(/nix/var/nix/builds/nix-PID-N holding build/). When the kept files belong
to Nix's build user and are unreadable (mode 0600), run nbs with sudo: it
copies them as root, hands the copy to you and still runs the sandbox as
you, never as root.`,
		Example: `  nbs shell /tmp/nix-build-wttr.drv-0
  nbs shell /tmp/nix-build-wttr.drv-0 make -j1
  nbs shell /nix/var/nix/builds/nix-1234-5678/build -- ls -la
  sudo nbs shell /tmp/nix-build-hello.drv-0
  nbs shell --keep /tmp/nix-build-wttr.drv-0`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{errors.New("shell: missing DIR, the kept build directory")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dir, opts.Command = args[0], args[1:]
			if runF != nil {
				return runF(opts)
			}
			return shellRun(cmd, opts)
		},
	}
	// Everything after DIR belongs to the command: nbs shell dir ls -la.
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().BoolVar(&opts.Keep, "keep", false, "keep the sandbox's copy of the build directory after it ends and print its path")
	return cmd
}

func shellRun(cmd *cobra.Command, opts *ShellOptions) error {
	f := opts.f
	status, kept, err := sandbox.Enter(cmd.Context(), sandbox.Config{
		Dir:     opts.Dir,
		Command: opts.Command,
		Keep:    opts.Keep,
		Drv:     opts.Drv,
		Stdin:   f.Stdin,
		Stdout:  f.Stdout,
		Stderr:  f.Stderr,
		Log:     f.Log(),
	})
	if kept != "" {
		fmt.Fprintf(f.Stderr, "nbs: kept the sandbox's copy of /build in %s\n", kept)
	}
	if errors.Is(err, sandbox.ErrUnreadable) {
		return &hintError{err, "run it as root, which copies the files and still runs the sandbox as you: sudo nbs shell " + opts.Dir}
	}
	if err != nil {
		return err
	}
	return &exitStatus{status}
}
