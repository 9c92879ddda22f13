package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	terminal "github.com/nix-build-shell/nbs/sandbox/term"
	"github.com/nix-build-shell/nbs/wrapper"
	"github.com/nix-build-shell/nbs/wrapper/remote"
	"github.com/spf13/cobra"
)

// BuildOptions is what `nbs build` was asked to do.
type BuildOptions struct {
	f *Factory
	// Run is a shell command to run in the failed build's sandbox instead
	// of an interactive shell.
	Run string
	// NoShell never enters a sandbox.
	NoShell bool
	// Program is nix-build, or nix for the new CLI (nix build).
	Program string
	// Args go to Program verbatim.
	Args []string
	// With are tools added to the sandbox (see nbs shell --with).
	With []string
	// Copy makes /build a full copy (see nbs shell --copy).
	Copy bool
	// Replay runs a failed derivation again and stops at its failure
	// (see nbs replay), Break before that stdenv phase.
	Replay bool
	Break  string
}

// buildLong is what --help says; buildManual adds, in the manual page
// only, how the program is chosen and how remote builders keep their
// directory.
const (
	buildLong = `Run nix-build with --keep-failed added, show its log unchanged and, when a
build fails, enter the sandbox of the failed build (see 'nbs shell').

nbs's own flags come first; every argument after them goes to nix-build
verbatim: -A, --arg, -I, --option, -j, --keep-going, several files. A
flake reference (.#hello, github:…) or -f runs 'nix build' instead.

When a build fails, nbs enters its sandbox on a terminal (then exits with
nix-build's status), runs CMD there under --run (and exits with CMD's
status), and otherwise prints the 'nbs shell' command that enters it
later. A build that failed on an ssh:// or ssh-ng:// builder is entered on
that builder. Ctrl-C stops nix-build; nbs exits 130.`
	buildMore = `How nix build is chosen and how remote builders keep their directory:
nbs man | man -l -`
	buildManual = `Outcome:
  success            nix-build's output and exit status, the result link
  failure, terminal  one line saying what failed and where, then an
                     interactive shell in its sandbox; nbs then exits with
                     nix-build's status
  failure, --run     the shell code CMD runs in the sandbox, in the
                     interactive shell's environment and directory
                     (stdenv builds: runPhase, resumeBuild, genericBuild);
                     nbs exits with CMD's status
  failure, no tty    the 'nbs shell DIR' command to enter it later
                     ('nbs shell --remote URI DIR' for a remote builder),
                     and nix-build's status
  several failures   (--keep-going) all are listed; the first is entered
  Ctrl-C             nix-build is stopped, nbs exits 130

nix-build or nix build: nbs runs 'nix build' (the new CLI) when an argument
that is not an option's value is a flake reference (contains '#', or
starts with path:, github:, git+, flake:, or is '.') or when -f/--file is
given, and nix-build otherwise; after -E/--expr the arguments are
expressions, never flake references.
--nix-build PATH chooses the program; a program named 'nix' means the new
CLI. For the new CLI nbs adds -L (unless you chose -L, --no-print-build-logs
or a --log-format) and, on Nix 2.4 and later, --extra-experimental-features
'nix-command flakes' for that call (flakes only for a flake reference, and
only when nix.conf does not enable it; your own --experimental-features
stands).

Remote builders: a build that failed on an ssh:// or ssh-ng:// builder is
entered on that builder, over ssh as Nix reaches it (the builder line's
key, $NIX_SSHOPTS); see 'nbs shell --remote'. Nix keeps no directory there
by itself (ssh-ng:// never passes --keep-failed on, ssh:// only to a
daemon-less root builder), so nbs passes the builders in use (--builders,
--option builders, or nix.conf's builders with its @FILE lists expanded)
to Nix with the builder's remote program told to keep it:
  ssh://HOST     → ssh://HOST?remote-program=nix-store%20--option%20keep-failed%20true
  ssh-ng://HOST  → ssh-ng://HOST?remote-program=nix-daemon%20--option%20keep-failed%20true
A remote-program of yours keeps its value, with the option appended.
Builders from nix.conf are changed only for root or a trusted user of the
nix-daemon (others' builders setting is ignored by the daemon). When a
builder still keeps nothing (a nix-daemon on an ssh-ng:// builder ignores
the option), nbs says what to set there: keep-failed = true in the
builder's nix.conf.`
)

func newCmdBuild(f *Factory) *cobra.Command {
	opts := &BuildOptions{f: f}
	cmd := &cobra.Command{
		Use:   "build [--run CMD] [--no-shell] [--with TOOL] [--nix-build PATH] NIX-BUILD-ARGS...",
		Short: "Run nix-build and enter the sandbox of a build that fails",
		Long:  buildLong + "\n\n" + buildMore,
		// The manual page has the details instead of the pointer to it.
		Annotations: map[string]string{manText: buildLong + "\n\n" + buildManual},
		Example: `  nbs build ./nix/wttr/default.nix
  nbs build -A hello '<nixpkgs>'
  nbs build --run 'ls /build; make -C /build/source' ./default.nix
  nbs build --no-shell --keep-going ./release.nix
  nbs build .#packages.x86_64-linux.default
  nbs build --run 'make -C /build/source' .#hello
  nbs build --max-jobs 0 --builders 'ssh://nix-docker x86_64-linux' .#hello`,
		// nix-build's arguments must reach it untouched, so nbs parses
		// only its own leading flags.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			help, err := parseBuildArgs(opts, args)
			if err != nil {
				return &usageError{err}
			}
			if help {
				return cmd.Help()
			}
			return buildRun(cmd, opts)
		},
	}
	// Shown by --help only; parsing is parseBuildArgs'.
	cmd.Flags().String("run", "", "run `CMD` in the failed build's sandbox instead of a shell, and exit with its status")
	cmd.Flags().Bool("no-shell", false, "never enter a sandbox; print how to enter it instead")
	cmd.Flags().Bool("copy", false, copyFlagUsage)
	cmd.Flags().Bool("replay", false, "run a failed derivation again, as you (on the builder it failed on), and stop at its failure in its live state (see 'nbs replay')")
	cmd.Flags().String("break", "", "with --replay: stop before stdenv's `PHASE` instead of at the failure")
	cmd.Flags().String("nix-build", "", "the nix-build (or nix) `PATH` to run")
	cmd.Flags().StringArray("with", nil, "add `STOREPATH` (or a nixpkgs attribute) to the failed build's sandbox and its bin/ to PATH; repeatable")
	return cmd
}

// parseBuildArgs takes nbs's own flags from the front of args and leaves
// the rest, verbatim, for nix-build.
func parseBuildArgs(opts *BuildOptions, args []string) (help bool, err error) {
	i := 0
	value := func(name string) (string, error) {
		a := args[i]
		if v, ok := strings.CutPrefix(a, name+"="); ok {
			return v, nil
		}
		if i+1 >= len(args) {
			return "", fmt.Errorf("build: %s needs an argument", name)
		}
		i++
		return args[i], nil
	}
loop:
	for ; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			i++
			break loop
		case a == "-h" || a == "--help":
			return true, nil
		case a == "--debug":
			opts.f.Debug = true
		case a == "--no-shell":
			opts.NoShell = true
		case a == "--copy":
			opts.Copy = true
		case a == "--replay":
			opts.Replay = true
		case a == "--break" || strings.HasPrefix(a, "--break="):
			if opts.Break, err = value("--break"); err != nil {
				return false, err
			}
		case a == "--run" || strings.HasPrefix(a, "--run="):
			if opts.Run, err = value("--run"); err != nil {
				return false, err
			}
		case a == "--nix-build" || strings.HasPrefix(a, "--nix-build="):
			if opts.Program, err = value("--nix-build"); err != nil {
				return false, err
			}
		case a == "--with" || strings.HasPrefix(a, "--with="):
			w, err := value("--with")
			if err != nil {
				return false, err
			}
			opts.With = append(opts.With, w)
		default:
			break loop
		}
	}
	opts.Args = args[i:]
	if opts.Program == "" {
		opts.Program = wrapper.DefaultProgram(opts.Args)
	}
	return false, nil
}

func buildRun(cmd *cobra.Command, opts *BuildOptions) error {
	f := opts.f
	ctx := cmd.Context()
	program := filepath.Base(opts.Program)
	host, err := nix.ReadHost(ctx)
	if err != nil {
		f.Log().Debug("cannot ask nix for its version and settings", "err", err)
		host = nil
	} else {
		f.Log().Debug("nix", "version", host.Version.String(), "from", host.From)
	}
	inv := wrapper.Command(opts.Program, opts.Args, host, f.Log())
	builders := inv.Builders
	res, err := wrapper.Run(ctx, wrapper.Options{
		Program:   inv.Program,
		Args:      inv.Args,
		Stdin:     f.Stdin,
		Stdout:    f.Stdout,
		Stderr:    f.Stderr,
		WatchDirs: wrapper.DefaultWatchDirs(""),
		Log:       f.Log(),
	})
	if err != nil {
		return &hintError{err, "install Nix, or name the program with --nix-build PATH"}
	}
	if res.Signal != nil {
		fmt.Fprintf(f.Stderr, "nbs: interrupted; %s stopped\n", program)
		return &exitStatus{interrupt.ExitCode(res.Signal)}
	}
	if res.ExitCode == 0 {
		return &exitStatus{0}
	}
	if opts.Replay {
		return replayBuildFailure(ctx, f, res.Failures, builders, res.ExitCode, opts)
	}

	// The failures that can be entered, in the order they failed: local
	// ones here, remote ones on their builder (never a local directory of
	// the same name, which belongs to another build).
	var kept []wrapper.Failure
	for _, fl := range res.Failures {
		name := nix.DrvName(fl.Drv)
		switch {
		case fl.KeptDir == "" && fl.Builder != "":
			fmt.Fprintf(f.Stderr, "nbs: %s failed on %s%s, which kept no build directory: %s\n", name, builderFor(fl.Builder, builders).URI, exitText(fl.ExitCode), notKeptReason(fl, builderFor(fl.Builder, builders), inv.WhyNotKept(fl)))
		case fl.KeptDir == "":
			fmt.Fprintf(f.Stderr, "nbs: %s failed, but Nix kept no build directory for it\n", name)
		default:
			kept = append(kept, fl)
		}
	}
	for _, d := range res.Unmatched {
		fmt.Fprintf(f.Stderr, "nbs: Nix kept %s for a build its log does not name\n  enter it with: nbs shell %s\n", d, shquote.Paste(d))
	}
	if len(kept) == 0 {
		// nix-build's own error (evaluation, missing file…) is in its
		// log already.
		if flag := misplacedFlag(opts.Args); flag != "" && len(res.Failures) == 0 {
			fmt.Fprintf(f.Stderr, "nbs: %s is nbs's own flag; give it before %s's arguments: nbs build %s …\n", flag, program, flag)
		}
		return &exitStatus{res.ExitCode}
	}
	interactive := opts.Run == "" && terminal.IsTerminal(f.Stdin) && terminal.IsTerminal(f.Stdout)
	enter := !opts.NoShell && (opts.Run != "" || interactive)
	for i, fl := range kept {
		where, enterCmd := "", "nbs shell "+shquote.Paste(fl.KeptDir)
		if setting, _ := wrapper.SandboxSetting(opts.Program, opts.Args); setting == "false" {
			// nbs shell takes the build's sandbox setting from Nix's
			// configuration or from the user, not from what it kept.
			enterCmd = "nbs shell --no-sandbox " + shquote.Paste(fl.KeptDir)
		}
		if fl.Builder != "" {
			b := builderFor(fl.Builder, builders)
			where = " on " + b.URI
			enterCmd = "nbs shell --remote " + shquote.Paste(remote.URI(b)) + " " + shquote.Paste(fl.KeptDir)
		}
		what := fmt.Sprintf("nbs: %s failed%s%s; kept in %s", nix.DrvName(fl.Drv), where, exitText(fl.ExitCode), fl.KeptDir)
		if i == 0 && enter {
			if fl.Builder == "" && !envVarsReadable(fl.KeptDir) {
				// Not "entering" when nbs is about to say it cannot.
				fmt.Fprintf(f.Stderr, "%s (%s)\n", what, fl.Drv)
				continue
			}
			if fl.Builder != "" {
				fmt.Fprintf(f.Stderr, "%s; entering its sandbox on that builder over ssh (%s)\n", what, fl.Drv)
			} else {
				fmt.Fprintf(f.Stderr, "%s; entering its sandbox (%s)\n", what, fl.Drv)
			}
			continue
		}
		fmt.Fprintf(f.Stderr, "%s (%s)\n  enter it with: %s\n", what, fl.Drv, enterCmd)
	}
	if !enter {
		return &exitStatus{res.ExitCode}
	}

	first := kept[0]
	if first.Builder != "" {
		status, err := enterFailedRemote(ctx, f, first, builders, opts.Run)
		if err != nil {
			return err
		}
		if opts.Run != "" {
			return &exitStatus{status}
		}
		return &exitStatus{res.ExitCode}
	}
	with, err := resolveWith(ctx, opts.With, nixpkgsBuild)
	if err != nil {
		if h := withHint(err); h != "" {
			return &hintError{err, h}
		}
		return err
	}
	setting, _ := wrapper.SandboxSetting(opts.Program, opts.Args)
	status, _, err := enterLocal(ctx, f, sandbox.Config{
		Dir:     first.KeptDir,
		Script:  opts.Run,
		Drv:     first.Drv,
		Sandbox: setting,
		With:    with,
		Entry:   entryMode(opts.Copy),
	})
	if err != nil {
		return err
	}
	if opts.Run != "" {
		return &exitStatus{status}
	}
	return &exitStatus{res.ExitCode}
}

// misplacedFlag is the first of nbs's own flags found among the
// arguments for Nix, where it went to Nix, "" if none.
func misplacedFlag(args []string) string {
	return wrapper.FirstOption(args, "--run", "--no-shell", "--nix-build", "--with")
}

// envVarsReadable reports whether nbs may read the kept directory's
// env-vars (recent nixpkgs writes it 0600 for the build user).
func envVarsReadable(dir string) bool {
	bd, err := nix.FindBuildDir(dir)
	if err != nil {
		return true // Enter says what is wrong
	}
	// Non-blocking: a FIFO named env-vars must not hang nbs here.
	f, err := os.OpenFile(filepath.Join(bd, "env-vars"), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return !errors.Is(err, fs.ErrPermission)
	}
	f.Close()
	return true
}

// enterFailedRemote enters a failure kept on a builder. --run's shell
// code goes to the remote nbs shell --run, which runs it as a local
// --run does (see remote.Options.Script for an older nbs installed
// there).
func enterFailedRemote(ctx context.Context, f *Factory, fl wrapper.Failure, builders []wrapper.Builder, script string) (int, error) {
	t, err := failureTarget(fl, builders, "enter it with: nbs shell --remote "+shquote.Paste(fl.Builder)+" "+shquote.Paste(fl.KeptDir), "nbs enters builds on ssh:// and ssh-ng:// builders only")
	if err != nil {
		return 0, err
	}
	return enterRemote(ctx, f, remote.Options{Target: t, Dir: fl.KeptDir, Script: script})
}

// builderFor is the builder Nix printed as uri: one of builders (whose
// URI nbs may have changed with wrapper.KeepFailedURI), else uri alone.
func builderFor(uri string, builders []wrapper.Builder) wrapper.Builder {
	for _, b := range builders {
		if b.SameBuilder(uri) {
			return b
		}
	}
	return wrapper.Builder{URI: uri}
}

// notKeptReason says why builder b kept no directory of fl and what to
// set there.
func notKeptReason(fl wrapper.Failure, b wrapper.Builder, why wrapper.NotKept) string {
	switch why {
	case wrapper.KeepFailedOff:
		return "keep-failed is off (--no-keep-failed or --option keep-failed false)"
	case wrapper.KeptSomewhere:
		return "Nix says it kept it there but not where; look for the newest directory in the builder's build-dir (nix-build-* in its /tmp) and enter it with nbs shell --remote " + shquote.Paste(fl.Builder) + " DIR"
	case wrapper.DaemonIgnored:
		return "its nix-daemon --stdio hands builds to a nix-daemon running there, which ignores options from the connection; set keep-failed = true in the builder's nix.conf (and restart its nix-daemon), or use the builder as ssh://" + strings.TrimPrefix(b.URI, "ssh-ng://") + ", whose keep-failed reaches that daemon"
	case wrapper.BuilderIgnored:
		return "nbs asked it to (remote-program=… --option keep-failed true); set keep-failed = true in the builder's nix.conf"
	case wrapper.NeverPassedSSHNG:
		return "Nix never passes --keep-failed to ssh-ng:// builders, and nbs could not ask it (the builders come from the nix-daemon's settings, which an untrusted user cannot change); set keep-failed = true in the builder's nix.conf"
	default:
		return "Nix passes --keep-failed only to builders that build as root without a daemon, and nbs could not ask it (the builders come from the nix-daemon's settings, which an untrusted user cannot change); set keep-failed = true in the builder's nix.conf"
	}
}

func exitText(code int) string {
	if code < 0 {
		return ""
	}
	return fmt.Sprintf(" (builder exit %d)", code)
}
