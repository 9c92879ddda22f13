package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/nix-build-shell/nbs/wrapper"
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
}

const buildLong = `Run nix-build with --keep-failed added, show its log unchanged and, when a
build fails, enter the sandbox of the failed build (see 'nbs shell').

Every argument after nbs's own flags goes to nix-build verbatim: -A, --arg,
-I, --option, -j, --keep-going, several files. nbs's flags must come
first.

Outcome:
  success            nix-build's output and exit status, the result link
  failure, terminal  one line saying what failed and where, then an
                     interactive shell in its sandbox; nbs then exits with
                     nix-build's status
  failure, --run     CMD runs in the sandbox; nbs exits with CMD's status
  failure, no tty    the 'nbs shell DIR' command to enter it later, and
                     nix-build's status
  several failures   (--keep-going) all are listed; the first is entered
  Ctrl-C             nix-build is stopped, nbs exits 130

nix-build or nix build: nbs runs 'nix build' (the new CLI) when an argument
is a flake reference (contains '#', or starts with path:, github:, git+,
flake:, or is '.'), and nix-build otherwise. --nix-build PATH chooses the
program; a program named 'nix' means the new CLI.`

func newCmdBuild(f *Factory, runF func(*BuildOptions) error) *cobra.Command {
	opts := &BuildOptions{f: f}
	cmd := &cobra.Command{
		Use:   "build [--run CMD] [--no-shell] [--nix-build PATH] NIX-BUILD-ARGS...",
		Short: "Run nix-build and enter the sandbox of a build that fails",
		Long:  buildLong,
		Example: `  nbs build ./nix/wttr/default.nix
  nbs build -A hello '<nixpkgs>'
  nbs build --run 'ls /build; make -C /build/source' ./default.nix
  nbs build --no-shell --keep-going ./release.nix
  nbs build .#packages.x86_64-linux.default`,
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
			if runF != nil {
				return runF(opts)
			}
			return buildRun(cmd, opts)
		},
	}
	// Shown by --help only; parsing is parseBuildArgs'.
	cmd.Flags().String("run", "", "run `CMD` in the failed build's sandbox instead of a shell, and exit with its status")
	cmd.Flags().Bool("no-shell", false, "never enter a sandbox; print how to enter it instead")
	cmd.Flags().String("nix-build", "", "the nix-build (or nix) `PATH` to run")
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
		case a == "--run" || strings.HasPrefix(a, "--run="):
			if opts.Run, err = value("--run"); err != nil {
				return false, err
			}
		case a == "--nix-build" || strings.HasPrefix(a, "--nix-build="):
			if opts.Program, err = value("--nix-build"); err != nil {
				return false, err
			}
		default:
			break loop
		}
	}
	opts.Args = args[i:]
	if opts.Program == "" {
		opts.Program = "nix-build"
		if usesFlakes(opts.Args) {
			opts.Program = "nix"
		}
	}
	return false, nil
}

// usesFlakes reports whether args name a flake output, which only the
// new CLI (nix build) builds.
func usesFlakes(args []string) bool {
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			continue
		}
		if a == "." || strings.Contains(a, "#") {
			return true
		}
		for _, p := range []string{"path:", "github:", "gitlab:", "sourcehut:", "git+", "flake:", "tarball+", "file+"} {
			if strings.HasPrefix(a, p) {
				return true
			}
		}
	}
	return false
}

func buildRun(cmd *cobra.Command, opts *BuildOptions) error {
	f := opts.f
	res, err := wrapper.Run(cmd.Context(), wrapper.Options{
		Program:   opts.Program,
		Args:      wrapper.BuildArgs(filepath.Base(opts.Program), opts.Args),
		Stdin:     f.Stdin,
		Stdout:    f.Stdout,
		Stderr:    f.Stderr,
		WatchDirs: wrapper.DefaultWatchDirs(""),
	})
	if err != nil {
		return &hintError{err, "install Nix, or name the program with --nix-build PATH"}
	}
	if res.Signal != nil {
		fmt.Fprintf(f.Stderr, "nbs: interrupted; %s stopped\n", filepath.Base(opts.Program))
		return &exitStatus{130}
	}
	if res.ExitCode == 0 {
		return &exitStatus{0}
	}

	var local []wrapper.Failure
	for _, fl := range res.Failures {
		name := drvName(fl.Drv)
		switch {
		case fl.KeptDir == "":
			fmt.Fprintf(f.Stderr, "nbs: %s failed, but Nix kept no build directory for it\n", name)
		case fl.Builder != "":
			fmt.Fprintf(f.Stderr, "nbs: %s failed on the remote builder %s; its build directory %s is on that machine\n", name, fl.Builder, fl.KeptDir)
		default:
			local = append(local, fl)
		}
	}
	if len(local) == 0 {
		// nix-build's own error (evaluation, missing file…) is in its
		// log already.
		return &exitStatus{res.ExitCode}
	}
	interactive := opts.Run == "" && sandbox.IsTerminal(f.Stdin) && sandbox.IsTerminal(f.Stdout)
	enter := !opts.NoShell && (opts.Run != "" || interactive)
	for i, fl := range local {
		what := fmt.Sprintf("nbs: %s failed%s; kept in %s", drvName(fl.Drv), exitText(fl.ExitCode), fl.KeptDir)
		if i == 0 && enter {
			fmt.Fprintf(f.Stderr, "%s; entering its sandbox (%s)\n", what, fl.Drv)
			continue
		}
		fmt.Fprintf(f.Stderr, "%s (%s)\n  enter it with: nbs shell %s\n", what, fl.Drv, shellQuote(fl.KeptDir))
	}
	if !enter {
		return &exitStatus{res.ExitCode}
	}

	first := local[0]
	status, _, err := sandbox.Enter(cmd.Context(), sandbox.Config{
		Dir:    first.KeptDir,
		Script: opts.Run,
		Drv:    first.Drv,
		Stdin:  f.Stdin,
		Stdout: f.Stdout,
		Stderr: f.Stderr,
		Log:    f.Log(),
	})
	if errors.Is(err, sandbox.ErrUnreadable) {
		return &hintError{err, "run it as root, which copies the files and still runs the sandbox as you: sudo nbs shell " + shellQuote(first.KeptDir)}
	}
	if err != nil {
		return err
	}
	if opts.Run != "" {
		return &exitStatus{status}
	}
	return &exitStatus{res.ExitCode}
}

// drvName is the derivation's name: /nix/store/HASH-NAME.drv → NAME.
func drvName(drv string) string {
	b := filepath.Base(drv)
	if i := strings.IndexByte(b, '-'); i >= 0 {
		b = b[i+1:]
	}
	return strings.TrimSuffix(b, ".drv")
}

func exitText(code int) string {
	if code < 0 {
		return ""
	}
	return fmt.Sprintf(" (builder exit %d)", code)
}

// shellQuote quotes s for pasting into a shell, only when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:@%") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
