package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	terminal "github.com/nix-build-shell/nbs/sandbox/term"
	"github.com/nix-build-shell/nbs/wrapper"
	"github.com/spf13/cobra"
)

// ReplayOptions is what `nbs replay` was asked to do.
type ReplayOptions struct {
	f       *Factory
	Target  string
	Command []string
	Run     string
	Break   string
	remote  remoteReplay // see addRemoteReplayFlags
	// NoSandbox: the original ran with sandbox = false (--no-sandbox);
	// Sandbox is the setting nix-build's arguments gave (nbs build).
	NoSandbox bool
	Sandbox   string
	// KeptDir is the original's kept directory, when known.
	KeptDir string
}

const replayLong = `Run the failed derivation TARGET again, in nbs's re-creation of Nix's
sandbox, as you (no sudo, nothing kept needed), and stop at its failure
in the failing process's live state.

TARGET is the .drv, or a kept build directory (nbs finds its .drv). The
derivation is not changed: the same builder, arguments and environment
as Nix gives them (NIX_BUILD_TOP, TMPDIR, the outputs, NIX_BUILD_CORES,
PATH=/path-not-set, HOME=/homeless-shelter, passAsFile, structured attrs
files, exportReferencesGraph), a fresh /build of your own, the outputs
created in the sandbox's private store directory. A build that ran with
sandbox = false is replayed that way: on the host, in a fresh build
directory of yours, the outputs in a private view of /nix/store (nbs
tells from nbs build's --option sandbox false or Nix's setting, never
from the kept env-vars, which the build wrote; --no-sandbox says so
when they cannot).

For a bash builder (nixpkgs' stdenv, or any builder = bash) the shell
stops where the failing command made errexit end it: you get an
interactive shell with everything it had (variables, exported or not,
functions, $0 and $@, shopt and set options, traps, the phase in
$curPhase, the directory), or CMD runs there, evaluated in that very
shell; nbs exits with CMD's status. errexit and nounset are off in the interactive shell
(it says so). Any other builder that fails leaves you in the replayed
/build with the builder's environment, like a kept directory.

--break PHASE stops a stdenv build before PHASE starts, with the earlier
phases done. A replay is a new run: when it fails elsewhere than the
original, or succeeds, nbs says so (exit 0 when it succeeded).

What a build can observe of nbs before the stop: BASH_ENV=/dev/fd/3 in
its initial environment block (/proc/self/environ; the variable itself
is gone), errtrace (set -E) on, nbs's ERR and EXIT traps (until the
build sets its own), a controlling terminal when nbs has one, and with
--break a DEBUG trap until genericBuild, then one line in runPhase.`

func newCmdReplay(f *Factory) *cobra.Command {
	opts := &ReplayOptions{f: f}
	cmd := &cobra.Command{
		Use:   "replay [--break PHASE] [--run CMD] TARGET [CMD [ARG...]]",
		Short: "Run a failed derivation again, as you, and stop at its failure in its live state",
		Long:  replayLong,
		Example: `  nbs replay /nix/store/...-hello-2.12.drv
  nbs replay /tmp/nix-build-hello-2.12.drv-0
  nbs replay --break checkPhase /nix/store/...-hello-2.12.drv
  nbs replay --run 'echo $curPhase; declare -F' /nix/store/...-hello-2.12.drv
  nbs replay /nix/store/...-hello-2.12.drv make -j1`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return &usageError{errors.New("replay: missing TARGET, the failed derivation (.drv) or its kept build directory")}
			}
			if opts.Run != "" && len(args) > 1 {
				return &usageError{errors.New("replay: give either --run CMD or a command after TARGET, not both")}
			}
			if opts.NoSandbox && opts.remote.uri != "" {
				return &usageError{errors.New("replay: --no-sandbox is for a replay here; on a builder, its own sandbox setting decides")}
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Target, opts.Command = args[0], args[1:]
			drv, err := replayDrv(opts.Target)
			if err != nil {
				return err
			}
			if !strings.HasSuffix(opts.Target, ".drv") {
				opts.KeptDir = opts.Target
			}
			return replayFailure(cmd.Context(), f, drv, -1, opts)
		},
	}
	cmd.Flags().SetInterspersed(false)
	cmd.Flags().StringVar(&opts.Break, "break", "", "stop before stdenv's `PHASE` (e.g. buildPhase) instead of at the failure")
	cmd.Flags().StringVar(&opts.Run, "run", "", "evaluate `CMD` in the stopped shell instead of an interactive one, and exit with its status")
	addRemoteReplayFlags(cmd, opts)
	cmd.Flags().BoolVar(&opts.NoSandbox, "no-sandbox", false, "replay it as a build with sandbox = false runs, on the host (nbs tells by itself from nbs build's arguments or Nix's sandbox setting, not from the kept env-vars)")
	return cmd
}

// replayDrv finds the derivation of TARGET: a .drv, or a kept build
// directory (by its env-vars, else by its name).
func replayDrv(target string) (string, error) {
	if strings.HasSuffix(target, ".drv") {
		abs, err := filepath.Abs(target)
		if err != nil {
			return "", err
		}
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
		}
		if _, err := nix.ReadDerivation(abs); err != nil {
			return "", err
		}
		return abs, nil
	}
	dir, err := nix.FindBuildDir(target)
	if err != nil {
		return "", &hintError{err, "give the failed derivation's .drv, or a directory nix-build --keep-failed kept"}
	}
	if ev, err := nix.ReadEnvVars(filepath.Join(dir, "env-vars")); err == nil {
		name, _ := ev.Get("name")
		out, _ := ev.Get("out")
		if drv, _, err := nix.FindDerivation(nix.StoreDir, name, out); err == nil {
			return drv, nil
		}
	}
	// env-vars is 0600 for the build user (recent nixpkgs): the name of
	// the kept directory names the derivation.
	var near time.Time
	if st, err := os.Stat(dir); err == nil {
		near = st.ModTime()
	}
	for _, p := range []string{target, dir} {
		if b, ok := nix.ParseBuildDir(p); ok && b.Name != "" {
			return nix.FindFailedDerivation(nix.StoreDir, b.Name, near)
		}
	}
	return "", fmt.Errorf("%s: cannot tell which derivation it was built from (env-vars unreadable, no name in the path); give the .drv", target)
}

// original is what is known of the failure being replayed.
type original struct {
	phase string
	exit  int // -1: unknown
	// succeeded: the outputs exist, the original did not fail.
	succeeded bool
}

func (o original) String() string {
	if o.succeeded {
		return " (its outputs exist: the original build succeeded)"
	}
	var s []string
	if o.phase != "" {
		s = append(s, "in "+o.phase)
	}
	if o.exit >= 0 {
		s = append(s, fmt.Sprintf("exit %d", o.exit))
	}
	if len(s) == 0 {
		return ""
	}
	return " (the original failed " + strings.Join(s, ", ") + ")"
}

// originalFromLog reads the phase the original build failed in from the
// log Nix stored for it.
func originalFromLog(ctx context.Context, drv string, exit int) original {
	o := original{exit: exit}
	if d, err := nix.ReadDerivation(drv); err == nil && len(d.Outputs) > 0 {
		o.succeeded = true
		for _, out := range d.Outputs {
			if _, err := os.Lstat(out.Path); out.Path == "" || err != nil {
				o.succeeded = false
			}
		}
	}
	o.phase = nix.FailedPhase(drv)
	return o
}

// replayFailure replays drv, whose build failed with exit (-1:
// unknown), and says what happened; its error carries the exit status.
func replayFailure(ctx context.Context, f *Factory, drv string, exit int, opts *ReplayOptions) error {
	name := nix.DrvName(drv)
	// The log is read while the sandbox is set up.
	origc := make(chan original, 1)
	go func() { origc <- opts.original(ctx, drv, exit) }()
	var orig original
	status, out, err := sandbox.Replay(ctx, sandbox.ReplayConfig{
		Drv:     opts.drvFile(drv),
		Break:   opts.Break,
		Script:  opts.Run,
		Command: opts.Command,
		KeptDir: opts.KeptDir,
		Sandbox: sandboxSetting(opts),
		Started: func() {
			orig = <-origc
			fmt.Fprintf(f.Stderr, "nbs: replaying %s%s in a new sandbox (%s)\n", name, orig, drv)
		},
		Entering: func(exit int) {
			fmt.Fprintf(f.Stderr, "nbs: the replayed builder failed%s without stopping in a shell of its own; entering its /build as the failure left it\n", exitText(exit))
		},
		Stdin:  f.Stdin,
		Stdout: f.Stdout,
		Stderr: f.Stderr,
		Log:    f.Log(),
	})
	if err != nil {
		return err
	}
	switch {
	case out.Stopped && !out.Break && orig.phase != "" && out.Phase != "" && out.Phase != orig.phase:
		fmt.Fprintf(f.Stderr, "nbs: note: the replay failed in %s, the original in %s: the build does not fail the same way every time\n", out.Phase, orig.phase)
	case out.Stopped && !out.Break && orig.exit >= 0 && out.Status != orig.exit && orig.phase == "":
		fmt.Fprintf(f.Stderr, "nbs: note: the replay failed with exit %d, the original with exit %d\n", out.Status, orig.exit)
	case !out.Stopped && out.BuilderExit == 0:
		if opts.Break != "" {
			fmt.Fprintf(f.Stderr, "nbs: --break %s: the replay never reached that phase (no such phase, or the build does not use stdenv's runPhase), and it succeeded\n", opts.Break)
		}
		fmt.Fprintf(f.Stderr, "nbs: the replay of %s succeeded: the original failure did not happen again (the build is not deterministic, or what it depends on changed)\n", name)
		return &exitStatus{0}
	case out.Stopped && !out.Break && opts.Break != "":
		fmt.Fprintf(f.Stderr, "nbs: --break %s: the build failed before it reached that phase\n", opts.Break)
	case !out.Stopped && opts.Break != "":
		fmt.Fprintf(f.Stderr, "nbs: --break %s: the replay never reached that phase\n", opts.Break)
	}
	return &exitStatus{status}
}

// sandboxSetting is the sandbox setting the original ran with, as the
// command line says ("" when it does not).
func sandboxSetting(opts *ReplayOptions) string {
	if opts.NoSandbox {
		return "false"
	}
	return opts.Sandbox
}

// noSandbox is the sandbox setting a --no-sandbox flag gives: "false",
// or "" (none) when it is not set.
func noSandbox(flag bool) string {
	if flag {
		return "false"
	}
	return ""
}

// unreadableHint is what to do about a kept directory whose env-vars
// only the build user may read: sudo, or a replay of the same request
// (of drv, the derivation, when the caller knows it; with --no-sandbox
// when the user said the build ran without the sandbox),
// with how long the original build ran when the directory tells
// (nix.KeptBuildTime).
func unreadableHint(run, dir, drv string, command []string, unsandboxed bool) string {
	shell := sudoShell(run, dir, command, unsandboxed)
	replay := "nbs replay" + strings.TrimPrefix(shell, "nbs shell")
	if drv != "" {
		// nbs build knows the derivation, which names exactly what to
		// replay (the directory's name may not: see below).
		replay = "nbs replay" + strings.TrimPrefix(sudoShell(run, drv, command, unsandboxed), "nbs shell")
	} else if b, ok := nix.ParseBuildDir(dir); ok && b.Name == "" {
		// Nix 2.30.4+ names the directory nix-PID-N: nothing but the
		// unreadable env-vars tells which derivation it was.
		replay = "nbs replay" + strings.TrimPrefix(sudoShell(run, "DRV", command, unsandboxed), "nbs shell") +
			", DRV being the .drv nix-build's error names (this directory's name does not)"
	}
	took := ""
	if build, err := nix.FindBuildDir(dir); err == nil {
		if d, ok := nix.KeptBuildTime(build); ok {
			took = " (" + originalRan(d) + ")"
		}
	}
	return "run it as root, which copies the files and still runs the sandbox as you: sudo " + shell +
		"; or, without sudo, run the build again as you and stop at its failure" + took + ": " + replay
}

// originalRan says how long the original build ran, for the offer of a
// replay (which takes about as long to reach the failure).
func originalRan(d time.Duration) string {
	if d < time.Second {
		return "the original ran under a second"
	}
	return "the original ran " + shortDuration(d)
}

// replayBuildFailure is nbs build --replay: the first failure is
// replayed, here or on the builder it failed on; nix-build's status is
// the exit status unless something ran at the stop.
func replayBuildFailure(ctx context.Context, f *Factory, failures []wrapper.Failure, builders []wrapper.Builder, nixStatus int, opts *BuildOptions) error {
	if len(failures) == 0 {
		return &exitStatus{nixStatus}
	}
	first := failures[0]
	for _, fl := range failures[1:] {
		fmt.Fprintf(f.Stderr, "nbs: %s failed too; replay it with: %s\n", nix.DrvName(fl.Drv), replayCommand(fl, builders))
	}
	interactive := terminal.IsTerminal(f.Stdin) && terminal.IsTerminal(f.Stdout)
	if opts.NoShell || (opts.Run == "" && !interactive) {
		where := ""
		if first.Builder != "" {
			where = " on " + builderFor(first.Builder, builders).URI
		}
		fmt.Fprintf(f.Stderr, "nbs: %s failed%s%s; replay it with: %s\n", nix.DrvName(first.Drv), where, exitText(first.ExitCode), replayCommand(first, builders))
		return &exitStatus{nixStatus}
	}
	ropts := &ReplayOptions{f: f, Run: opts.Run, Break: opts.Break}
	var err error
	if first.Builder != "" {
		err = replayFailedRemote(ctx, f, first, builders, ropts)
	} else {
		ropts.KeptDir = first.KeptDir
		ropts.Sandbox, _ = wrapper.SandboxSetting(opts.Program, opts.Args)
		err = replayFailure(ctx, f, first.Drv, first.ExitCode, ropts)
	}
	var st *exitStatus
	if opts.Run == "" && errors.As(err, &st) {
		return &exitStatus{nixStatus}
	}
	return err
}
