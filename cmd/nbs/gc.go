package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	"github.com/spf13/cobra"
)

// GCOptions is what `nbs gc` was asked to do.
type GCOptions struct {
	f *Factory
	// Dirs, when given, are the only candidates.
	Dirs      []string
	Search    nix.KeptSearch
	CopyBases []string
	Policy    sandbox.GCPolicy
	// OlderThan is --older-than as given, for the sudo hint.
	OlderThan string
	DryRun    bool
	Now       func() time.Time
}

func newCmdGC(f *Factory) *cobra.Command {
	opts := &GCOptions{f: f, Search: nix.DefaultKeptSearch(), CopyBases: defaultCopyBases(), Now: time.Now}
	cmd := &cobra.Command{
		Use:   "gc [--older-than AGE] [--keep N] [--dry-run] [DIR...]",
		Short: "Remove the build directories Nix kept, and the copies nbs kept",
		Long: `Remove the build directories that Nix kept after failed builds (the ones
'nbs list' shows) and the copies kept by 'nbs shell --keep'. Nix gives no
way to remove them (NixOS/nix#100) and they fill disks: their files
belong to Nix's build users, so only root can remove those; run
'sudo nbs gc'. Without root nbs gc removes what is yours and says what
needs sudo.

Without DIR every kept directory and copy is a candidate; with DIR only
those named. --older-than AGE leaves what is younger than AGE (90m, 12h,
7d, 2w); --keep N leaves the N newest kept directories and the N newest
copies. --dry-run only says what would go.

Nothing in use is removed: a directory an nbs session has entered (it
holds a lock on it), one a build still running uses (a process inside
it, Nix's lock on the build's output, the Nix process that made it), a
kept copy whose nbs still runs, a kept directory (or kept changes) that
changes kept with 'nbs shell --keep' lie on, unless those go too.`,
		Example: `  nbs gc --dry-run
  sudo nbs gc --older-than 7d
  sudo nbs gc --keep 3
  sudo nbs gc /tmp/nix-build-wttr.drv-0`,
		ValidArgsFunction: completeKeptDirs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dirs = args
			if opts.OlderThan != "" {
				d, err := parseAge(opts.OlderThan)
				if err != nil {
					return &usageError{fmt.Errorf("gc: --older-than: %w", err)}
				}
				opts.Policy.OlderThan = d
			}
			if opts.Policy.Keep < 0 {
				return &usageError{errors.New("gc: --keep must be 0 or more")}
			}
			return gcRun(opts)
		},
	}
	cmd.Flags().StringVar(&opts.OlderThan, "older-than", "", "remove only what is older than `AGE` (90m, 12h, 7d, 2w)")
	cmd.Flags().IntVar(&opts.Policy.Keep, "keep", 0, "leave the `N` newest kept directories and the N newest copies")
	cmd.Flags().BoolVarP(&opts.DryRun, "dry-run", "n", false, "say what would be removed, remove nothing")
	return cmd
}

// parseAge reads a duration as Go does (90m, 12h) or in days and weeks.
func parseAge(s string) (time.Duration, error) {
	for suffix, unit := range map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseFloat(n, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("%q is not an age such as 90m, 12h, 7d or 2w", s)
			}
			return time.Duration(v * float64(unit)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not an age such as 90m, 12h, 7d or 2w", s)
	}
	return d, nil
}

func gcRun(opts *GCOptions) error {
	f := opts.f
	items, err := sandbox.FindGarbage(opts.Search, opts.CopyBases, opts.Dirs)
	if err != nil {
		return err
	}
	if len(items) == 0 {
		fmt.Fprintf(f.Stderr, "nbs: nothing to remove: no kept build directories in %s, no kept copies\n", strings.Join(opts.Search.Locations(), ", "))
		return nil
	}
	verdicts := opts.Policy.Decide(items, opts.Now(), os.Geteuid())
	dirs := make([]string, len(verdicts))
	for i, v := range verdicts {
		dirs[i] = v.Path
	}
	sizes := measure(dirs)

	var freed, needRoot []dirSize
	var rootArgs []string
	var failed []error
	tw := tabwriter.NewWriter(f.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ACTION\tSIZE\tNAME\tDIRECTORY")
	for i, v := range verdicts {
		action := "removed"
		switch {
		case v.NeedsRoot:
			action = "needs root"
			needRoot = append(needRoot, sizes[i])
			rootArgs = append(rootArgs, v.Dir)
		case !v.Remove:
			action = "kept"
		case opts.DryRun:
			action = "would remove"
			freed = append(freed, sizes[i])
		default:
			if err := sandbox.RemoveGarbage(v.Garbage); err != nil {
				failed = append(failed, err)
				action = "failed"
			} else {
				freed = append(freed, sizes[i])
			}
		}
		name := v.Name
		if name == "" {
			name = "?"
		}
		if v.Copy {
			name = "copy of " + name
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", action, sizes[i], oneLine(name), oneLine(v.Path))
		if v.Reason != "" && !v.NeedsRoot {
			line += "  (" + oneLine(v.Reason) + ")"
		}
		fmt.Fprintln(tw, line)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	verb := "freed"
	if opts.DryRun {
		verb = "would free"
	}
	fmt.Fprintf(f.Stderr, "nbs: %s %s\n", verb, total(freed))
	if len(needRoot) > 0 {
		how := "sudo nbs gc"
		if len(opts.Dirs) > 0 {
			for _, a := range rootArgs {
				how += " " + shquote.Paste(a)
			}
		} else if flags := gcFlags(opts); flags != "" {
			how += " " + flags
		}
		whose, it := "belong to Nix's build users", "them"
		if len(needRoot) == 1 {
			whose, it = "belongs to Nix's build user", "it"
		}
		fmt.Fprintf(f.Stderr, "nbs: %s (%s) %s; %s removes %s\n", plural(len(needRoot), "directory", "directories"), total(needRoot), whose, how, it)
	}
	if len(failed) > 0 {
		return errors.Join(failed...)
	}
	if len(opts.Dirs) > 0 && len(needRoot) > 0 {
		return &exitStatus{1}
	}
	return nil
}

// gcFlags are the policy flags again, for the sudo hint.
func gcFlags(opts *GCOptions) string {
	var f []string
	if opts.Policy.OlderThan > 0 {
		f = append(f, "--older-than", shquote.Paste(opts.OlderThan))
	}
	if opts.Policy.Keep > 0 {
		f = append(f, "--keep", strconv.Itoa(opts.Policy.Keep))
	}
	if opts.DryRun {
		f = append(f, "--dry-run")
	}
	return strings.Join(f, " ")
}
