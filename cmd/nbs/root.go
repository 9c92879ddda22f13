package main

import (
	"context"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at link time (-ldflags "-X main.version=…"); otherwise
// it comes from the module's build information.
var version = ""

func nbsVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// Factory carries what every command needs; tests replace its parts.
type Factory struct {
	Stdin          *os.File
	Stdout, Stderr *os.File
	Debug          bool
}

// Log returns the logger for nbs's own messages: warnings by default,
// the set-up trace with --debug. It writes to stderr; stdout belongs to
// the command in the sandbox.
func (f *Factory) Log() *slog.Logger {
	level := slog.LevelWarn
	if f.Debug {
		level = slog.LevelDebug
	}
	return slog.New(newLineHandler(f.Stderr, level))
}

func newRootCmd(f *Factory) *cobra.Command {
	root := &cobra.Command{
		Use:   "nbs",
		Short: "Debug failed Nix builds inside a re-created build sandbox",
		Long: `nbs (nix-build-shell) makes failed Nix builds debuggable.

When a build fails with --keep-failed, Nix leaves its build directory
behind. nbs re-creates the Linux sandbox the builder ran in (user, mount,
IPC, network, UTS and PID namespaces; uid 1000, gid 100; hostname
localhost; only lo; /build, /nix, /dev, /proc, /tmp and /etc as Nix has
them) around a private, copy-on-write view of that directory, and gives
you a shell or runs one command there. No root needed; the kept directory is never
modified.`,
		Example: `  # a build failed and Nix kept its directory:
  nbs shell /tmp/nix-build-wttr.drv-0

  # run one command there; nbs exits with its status
  nbs shell /tmp/nix-build-wttr.drv-0 make -j1

  # what failed lately; enter the newest
  nbs list
  nbs shell --last

  # keep what you changed in there, and turn it into a patch
  nbs shell --keep /tmp/nix-build-wttr.drv-0
  nbs diff /tmp/nix-build-wttr.drv-0 > fix.patch`,
		Version:       nbsVersion(),
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetVersionTemplate("nbs {{.Version}}\n")
	root.PersistentFlags().BoolVar(&f.Debug, "debug", false, "print the sandbox set-up steps on stderr")
	root.SetIn(f.Stdin)
	root.SetOut(f.Stdout)
	root.SetErr(f.Stderr)
	root.AddCommand(newCmdShell(f, nil))
	root.AddCommand(newCmdBuild(f))
	root.AddCommand(newCmdReplay(f))
	root.AddCommand(newCmdList(f))
	root.AddCommand(newCmdAttach(f))
	root.AddCommand(newCmdDiff(f))
	root.AddCommand(newCmdGC(f))
	root.AddCommand(newCmdCompletion(f))
	root.AddCommand(newCmdMan(f))
	// nbs completion is ours, with examples; cobra's would be a second.
	root.CompletionOptions.DisableDefaultCmd = true
	return root
}

// run executes the CLI and returns the process exit status.
func run(args []string, stdin, stdout, stderr *os.File) int {
	f := &Factory{Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := newRootCmd(f)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(context.Background())
	helpFor := "nbs"
	if cmd != nil {
		helpFor = cmd.CommandPath()
	}
	return exitCode(err, stderr, helpFor)
}
