package main

// The CLI side of entering a failed build on a remote builder: the
// --remote flag of `nbs shell`, and the hints. The session itself (ssh as
// Nix runs it, the scripts on the builder, the cleanup) is
// wrapper/remote's.

import (
	"context"
	"errors"

	"github.com/nix-build-shell/nbs/wrapper/remote"
	"github.com/spf13/cobra"
)

// addRemoteFlag gives `nbs shell` its --remote URI flag: DIR is then a
// kept directory on that builder, and nbs enters it there over ssh.
func addRemoteFlag(cmd *cobra.Command, opts *ShellOptions) {
	var uri string
	cmd.Flags().StringVar(&uri, "remote", "", "DIR is on the remote builder `URI` (ssh://[USER@]HOST[:PORT], ssh-ng://…, as in Nix's builders); enter it there over ssh")
	cmd.Long += `

--remote URI: DIR is a directory kept on that builder, and nbs enters it
there. It reaches the builder over ssh as Nix does (ssh HOST -x -a
$NIX_SSHOPTS, with the ssh-key and base64-ssh-public-host-key of the URI,
else of that host's line in Nix's builders setting) and runs the builder's
nbs, or a copy of this one when none is installed and the machine is the
same kind. CMD and the exit status work as here; --keep keeps the copy on
the builder. When the session ends, also by Ctrl-C, nbs removes what it
brought there (its directory, a copied nbs). 'nbs build' prints this
command for a build that failed on a builder.`
	cmd.Example += `
  nbs shell --remote ssh://nix-docker /tmp/nix-build-hello.drv-0`
	args := cmd.Args
	cmd.Args = func(c *cobra.Command, a []string) error {
		switch {
		case uri == "":
			return args(c, a)
		case opts.Last:
			return &usageError{errors.New("shell --remote: --last finds kept directories on this machine; give DIR, the directory on the builder")}
		case len(opts.With) > 0:
			return &usageError{errors.New("shell --remote: --with adds this machine's store paths, which the builder does not have")}
		case len(a) == 0:
			return &usageError{errors.New("shell --remote: missing DIR, the kept build directory on the builder")}
		}
		return nil
	}
	local := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if uri == "" {
			return local(c, args)
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
