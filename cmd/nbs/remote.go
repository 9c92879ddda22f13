package main

// The CLI side of entering a failed build on a remote builder: the
// --remote flag of `nbs shell`, and the hints. The session itself (ssh as
// Nix runs it, the scripts on the builder, the cleanup) is
// wrapper/remote's.

import (
	"context"
	"errors"

	"github.com/nix-build-shell/nbs/wrapper"
	"github.com/nix-build-shell/nbs/wrapper/remote"
	"github.com/spf13/cobra"
)

// addRemoteFlag gives `nbs shell` its --remote URI flag: DIR is then a
// kept directory on that builder, and nbs enters it there over ssh.
func addRemoteFlag(cmd *cobra.Command, opts *ShellOptions) {
	var uri string
	cmd.Flags().StringVar(&uri, "remote", "", "DIR is on the remote builder `URI` (ssh://[USER@]HOST[:PORT], ssh-ng://…, as in Nix's builders); enter it there over ssh")
	cmd.Example += `
  nbs shell --remote ssh://nix-docker /tmp/nix-build-hello.drv-0`
	local := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if uri == "" {
			return local(c, args)
		}
		if len(args) == 0 {
			return &usageError{errors.New("shell --remote: missing DIR, the kept build directory on the builder")}
		}
		return remoteShellRun(c.Context(), opts.f, uri, args[0], args[1:], opts.Keep)
	}
}

// remoteShellRun is `nbs shell --remote URI DIR [CMD…]`.
func remoteShellRun(ctx context.Context, f *Factory, uri, dir string, command []string, keep bool) error {
	t, err := remote.Parse(uri)
	if err != nil {
		return &usageError{err}
	}
	t.Complete(ctx, f.Log())
	status, err := enterRemote(ctx, f, remote.Options{Target: t, Dir: dir, Command: command, Keep: keep})
	if err != nil {
		return err
	}
	return &exitStatus{status}
}

// enterRemote runs a remote session on the CLI's terminal, with its
// logger and --debug; the session's hints become the CLI's.
func enterRemote(ctx context.Context, f *Factory, o remote.Options) (int, error) {
	o.Stdin, o.Stdout, o.Stderr = f.Stdin, f.Stdout, f.Stderr
	o.Log, o.Debug = f.Log(), f.Debug
	status, err := remote.Enter(ctx, o)
	var re *remote.Error
	if errors.As(err, &re) {
		return status, &hintError{err, re.Hint}
	}
	return status, err
}

// remoteURI is the URI printed in 'nbs shell --remote URI DIR' for
// builder b (see remote.URI).
func remoteURI(b wrapper.Builder) string { return remote.URI(b) }
