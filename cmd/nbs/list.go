package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/spf13/cobra"
)

// ListOptions is what `nbs list` was asked to do.
type ListOptions struct {
	f *Factory
	// Search says where to look; tests point it at their own places.
	Search nix.KeptSearch
	// CopyBases are where kept copies (nbs shell --keep) are looked for.
	CopyBases []string
	Now       func() time.Time
	// Running lists the builds running now (root only; none otherwise).
	Running func() ([]sandbox.Build, error)
}

func defaultCopyBases() []string {
	if t := os.TempDir(); t != "/tmp" {
		return []string{t, "/tmp"}
	}
	return []string{"/tmp"}
}

func newCmdList(f *Factory) *cobra.Command {
	opts := &ListOptions{f: f, Search: nix.DefaultKeptSearch(), CopyBases: defaultCopyBases(), Now: time.Now, Running: sandbox.RunningBuilds}
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the build directories Nix kept on this machine, newest first",
		Long: `List the build directories that Nix kept after failed builds (nix-build
--keep-failed, nbs build), newest first, with the derivation's name, how
long ago its last phase started and its size.

nbs looks where Nix and Lix put them, by default:
  $TMPDIR, /tmp         nix-build-NAME.drv-N[/build]   (Nix up to 2.29)
  /nix/var/nix/builds   nix-PID-N/build                (Nix 2.30+)
  /nix/var/nix/b        ID/b                           (Lix 2.94+)
A build still running shows up too, marked (running); as root, nbs
also lists the builds running now, below, for 'sudo nbs attach'. A size
marked + is at least that:
part of the directory could not be read (sudo nbs list reads it all).

Below them comes what 'nbs shell --keep' kept, with the directory it was
made from: copies, and the changes of copy-on-write views ("changes only,
over it": they need that directory, and 'nbs shell PATH' enters both);
'nbs diff DIR' shows what changed in the newest.
Enter the newest kept directory with 'nbs shell --last'.`,
		Example: `  nbs list
  sudo nbs list            # also sizes of directories owned by nixbld users
  nbs shell --last         # enter the first one listed`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return listRun(opts)
		},
	}
	return cmd
}

func listRun(opts *ListOptions) error {
	f := opts.f
	kept := nix.FindKept(opts.Search)
	copies := sandbox.KeptCopies(opts.CopyBases)
	var running []sandbox.Build
	if opts.Running != nil {
		// Without root nothing can be told of other users' builds.
		running, _ = opts.Running()
	}
	if len(kept) == 0 && len(copies) == 0 {
		fmt.Fprintf(f.Stderr, "nbs: no kept build directories in %s; nix-build --keep-failed (or nbs build) keeps them\n", strings.Join(opts.Search.Locations(), ", "))
		printBuilds(f.Stdout, running, opts.Now())
		return nil
	}
	now := opts.Now()
	dirs := make([]string, 0, len(kept)+len(copies))
	for _, k := range kept {
		dirs = append(dirs, k.Dir)
	}
	for _, c := range copies {
		dirs = append(dirs, c.Dir)
	}
	sizes := measure(dirs)
	tw := tabwriter.NewWriter(f.Stdout, 0, 0, 2, ' ', 0)
	if len(kept) > 0 {
		fmt.Fprintln(tw, "AGE\tSIZE\tNAME\tDIRECTORY")
		for i, k := range kept {
			name := k.Name
			if name == "" {
				name = "?"
			}
			size := sizes[i]
			if k.Err != nil && errors.Is(k.Err, fs.ErrPermission) {
				name += " (unreadable)"
			}
			for _, b := range running {
				if b.Uses(k.Dir) {
					name += " (running)"
					break
				}
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", age(now, k.Time), size, oneLine(name), oneLine(k.Dir))
		}
	}
	if len(copies) > 0 {
		if len(kept) > 0 {
			fmt.Fprintln(tw)
		}
		fmt.Fprintln(tw, "AGE\tSIZE\tKEPT COPY\tCOPIED FROM")
		for i, c := range copies {
			from := oneLine(c.Origin)
			if c.View != nil {
				from += " (changes only, over it)"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", age(now, c.Time), sizes[len(kept)+i], oneLine(c.Dir), from)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// What all of it costs, and how to get it back (NixOS/nix#100:
	// only Nix's build user, or root, can remove most of it). On
	// stderr: stdout stays the table, for scripts.
	fmt.Fprintf(f.Stderr, "nbs: %s in all, %s and %s; 'nbs gc --help' says how to remove them\n", total(sizes), plural(len(kept), "kept directory", "kept directories"), plural(len(copies), "kept copy", "kept copies"))
	if len(running) > 0 {
		fmt.Fprintln(f.Stdout)
		printBuilds(f.Stdout, running, now)
	}
	return nil
}

// dirSize is what measure found of one directory.
type dirSize struct {
	bytes    int64
	complete bool // every part of it could be read
}

func (d dirSize) String() string {
	if !d.complete {
		return humanBytes(d.bytes) + "+"
	}
	return humanBytes(d.bytes)
}

// measure sizes the directories a few at a time: each is a walk of its
// own, and kept directories of big builds hold many files.
func measure(dirs []string) []dirSize {
	out := make([]dirSize, len(dirs))
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i, d := range dirs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			out[i].bytes, out[i].complete = nix.DirSize(d)
		}()
	}
	wg.Wait()
	return out
}

// total adds sizes up; it is complete when each of them is.
func total(sizes []dirSize) dirSize {
	t := dirSize{complete: true}
	for _, s := range sizes {
		t.bytes += s.bytes
		t.complete = t.complete && s.complete
	}
	return t
}

// plural is "1 thing" or "N things".
func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// age is how long ago t was: 12s, 5m, 3h, 2d.
func age(now, t time.Time) string {
	if t.IsZero() {
		return "?"
	}
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", max(int(d.Seconds()), 0))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours())/24)
}

// lastKept is the newest kept build directory that can be entered.
func lastKept(s nix.KeptSearch) (nix.KeptDir, error) {
	kept := nix.FindKept(s)
	for _, k := range kept {
		if k.Err == nil || errors.Is(k.Err, fs.ErrPermission) {
			// An unreadable env-vars is still the newest failure:
			// nbs shell says how to get in (sudo).
			return k, nil
		}
	}
	return nix.KeptDir{}, fmt.Errorf("no kept build directory in %s", strings.Join(s.Locations(), ", "))
}

// completeKeptDirs offers the kept build directories for DIR.
func completeKeptDirs(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveDefault
	}
	var dirs []string
	for _, k := range nix.FindKept(nix.DefaultKeptSearch()) {
		if strings.HasPrefix(k.Dir, toComplete) {
			name := k.Name
			if name == "" {
				name = "?"
			}
			dirs = append(dirs, k.Dir+"\t"+name)
		}
	}
	if len(dirs) == 0 {
		return nil, cobra.ShellCompDirectiveFilterDirs
	}
	return dirs, cobra.ShellCompDirectiveNoFileComp
}
