package main

// The CLI side of entering or replaying a failed build on a remote
// builder: the --remote flags of `nbs shell` and `nbs replay`, and the
// hints. The session itself (ssh as
// Nix runs it, the scripts on the builder, the cleanup) is
// wrapper/remote's.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	terminal "github.com/nix-build-shell/nbs/sandbox/term"
	"github.com/nix-build-shell/nbs/wrapper"
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
	return status, remoteHint(err)
}

// remoteReplay is what nbs replay's remote flags say: --remote here,
// the hidden ones on the builder, where the local nbs runs nbs replay
// --shipped FILE … DRV (see remote.Replay).
type remoteReplay struct {
	uri     string // --remote: replay on that builder
	shipped string // --shipped: the derivation DRV, as the local nbs sent it
	phase   string // --original-phase: the phase the local log names
	exit    int    // --original-exit: the builder's exit code, -1 unknown
}

// addRemoteReplayFlags gives `nbs replay` its --remote URI flag, and
// the hidden flags the remote end of such a replay gets.
func addRemoteReplayFlags(cmd *cobra.Command, opts *ReplayOptions) {
	r := &opts.remote
	cmd.Flags().StringVar(&r.uri, "remote", "", "the build failed on the remote builder `URI` (ssh://[USER@]HOST[:PORT], ssh-ng://…, as in Nix's builders); replay it there over ssh")
	cmd.Flags().StringVar(&r.shipped, "shipped", "", "read TARGET's derivation from `FILE`, sent by nbs replay --remote")
	cmd.Flags().StringVar(&r.phase, "original-phase", "", "the original build failed in `PHASE`")
	cmd.Flags().IntVar(&r.exit, "original-exit", -1, "the original builder exited with `N`")
	for _, n := range []string{"shipped", "original-phase", "original-exit"} {
		cmd.Flags().MarkHidden(n)
	}
	cmd.Long += `

--remote URI: the build failed on that builder, and the replay runs
there, as the ssh user, in nbs's sandbox on the builder. TARGET is the
.drv here (or the name of the directory the builder kept). The builder
has the build's inputs but not the .drv files: nbs sends it the
derivation as Nix did for the build (the input derivations' outputs
named as inputs) into a private directory there, nothing into its
store, and the builder's nbs, or a copy of this one when none is
installed (or too old) and the machine is the same kind, replays it
from there. It reaches the builder as 'nbs shell --remote' does, CMD
and the exit status work as here, and when the replay ends, also by
Ctrl-C, nbs removes what it brought there. 'nbs build --replay' does
this for a build that failed on a builder.`
	cmd.Example += `
  nbs replay --remote ssh://nix-docker --run 'echo $curPhase' /nix/store/...-hello-2.12.drv`
	local := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		switch {
		case r.uri != "" && r.shipped != "":
			return &usageError{errors.New("replay: --shipped is the builder's side of --remote; give one of them")}
		case r.uri != "":
			t, err := remote.Parse(r.uri)
			if err != nil {
				return &usageError{err}
			}
			t.Complete(c.Context(), opts.f.Log())
			opts.Target, opts.Command = args[0], args[1:]
			drv, err := remoteReplayDrv(args[0])
			if err != nil {
				return err
			}
			return replayRemote(c.Context(), opts.f, t, drv, -1, opts)
		case r.shipped != "":
			opts.Target, opts.Command = args[0], args[1:]
			if err := remote.CheckShipped(r.shipped, args[0]); err != nil {
				return remoteHint(err)
			}
			return replayFailure(c.Context(), opts.f, args[0], r.exit, opts)
		}
		return local(c, args)
	}
}

// remoteReplayDrv is the .drv here of TARGET for --remote: the .drv
// itself, or the one the builder's kept directory is named after.
func remoteReplayDrv(target string) (string, error) {
	if strings.HasSuffix(target, ".drv") {
		return replayDrv(target)
	}
	if b, ok := nix.ParseBuildDir(target); ok && b.Name != "" {
		return nix.FindFailedDerivation(nix.StoreDir, b.Name, time.Time{})
	}
	return "", &usageError{fmt.Errorf("replay --remote: %s names no derivation; give the .drv (it is here: the build started here)", target)}
}

// drvFile is where a replay reads the derivation drv from: the file the
// local nbs sent (--shipped), else drv itself.
func (o *ReplayOptions) drvFile(drv string) string {
	if o.remote.shipped != "" {
		return o.remote.shipped
	}
	return drv
}

// original is what is known of drv's failure: from the log here, or,
// for a shipped derivation, what the local nbs read from its log (the
// builder's own log when it read nothing).
func (o *ReplayOptions) original(ctx context.Context, drv string, exit int) original {
	if o.remote.shipped == "" {
		return originalFromLog(ctx, drv, exit)
	}
	orig := originalFromLog(ctx, o.remote.shipped, exit)
	if o.remote.phase != "" {
		orig.phase = o.remote.phase
	}
	return orig
}

// replayRemote replays drv, which failed (with exit, -1 unknown) on the
// builder t, there.
func replayRemote(ctx context.Context, f *Factory, t *remote.Target, drv string, exit int, opts *ReplayOptions) error {
	if !(terminal.IsTerminal(f.Stdin) && terminal.IsTerminal(f.Stdout)) && opts.Run == "" && len(opts.Command) == 0 {
		return errors.New("no terminal for an interactive shell at the stop: give a command to run there (nbs replay --remote URI TARGET CMD…, or --run CMD)")
	}
	d, err := nix.ReadDerivation(drv)
	if err != nil {
		return err
	}
	basic, err := d.Basic()
	if err != nil {
		return fmt.Errorf("%s: %w", drv, err)
	}
	status, err := enterRemote(ctx, f, remote.Options{
		Target:  t,
		Script:  opts.Run,
		Command: opts.Command,
		Replay: &remote.Replay{
			Drv:        drv,
			Derivation: basic.Unparse(),
			Phase:      nix.FailedPhase(drv),
			Exit:       exit,
			Break:      opts.Break,
		},
	})
	if err != nil {
		return err
	}
	return &exitStatus{status}
}

// replayFailedRemote is nbs build --replay for a failure on a builder.
func replayFailedRemote(ctx context.Context, f *Factory, fl wrapper.Failure, builders []wrapper.Builder, opts *ReplayOptions) error {
	t, err := failureTarget(fl, builders, "replay it there with: "+replayCommand(wrapper.Failure{Drv: fl.Drv, Builder: fl.Builder}, nil), "nbs replays builds on ssh:// and ssh-ng:// builders only; build it here with --builders '' to replay it")
	if err != nil {
		return err
	}
	fmt.Fprintf(f.Stderr, "nbs: %s failed on %s%s; replaying it on that builder over ssh\n", nix.DrvName(fl.Drv), builderFor(fl.Builder, builders).URI, exitText(fl.ExitCode))
	return replayRemote(ctx, f, t, fl.Drv, fl.ExitCode, opts)
}

// replayCommand is the command that replays failure fl.
func replayCommand(fl wrapper.Failure, builders []wrapper.Builder) string {
	if fl.Builder == "" {
		return "nbs replay " + shquote.Paste(fl.Drv)
	}
	return "nbs replay --remote " + shquote.Paste(remote.URI(builderFor(fl.Builder, builders))) + " " + shquote.Paste(fl.Drv)
}

// failureTarget is the builder fl failed on. The URI comes from the
// build log, which the build's own output is part of: a build could
// print a line naming a host of its choice. Only a builder this build
// was given is connected to on nbs's own; for any other, trusted says
// how to do it by hand. notSSH is the hint for a builder nbs cannot
// reach.
func failureTarget(fl wrapper.Failure, builders []wrapper.Builder, trusted, notSSH string) (*remote.Target, error) {
	known := false
	for _, b := range builders {
		known = known || b.SameBuilder(fl.Builder)
	}
	if !known {
		return nil, &hintError{
			fmt.Errorf("the log says %s failed on %s, which is not one of this build's builders (--builders or the builders setting); nbs does not connect to it", nix.DrvName(fl.Drv), fl.Builder),
			"if you trust that machine, " + trusted,
		}
	}
	b := builderFor(fl.Builder, builders)
	t, err := remote.Parse(b.URI)
	if err != nil {
		return nil, &hintError{err, notSSH}
	}
	t.WithBuilder(b)
	return t, nil
}

// remoteHint makes a session's hint the CLI's.
func remoteHint(err error) error {
	var re *remote.Error
	if errors.As(err, &re) {
		return &hintError{err, re.Hint}
	}
	return err
}
