package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/nix-build-shell/nbs/sandbox/diff"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
	terminal "github.com/nix-build-shell/nbs/sandbox/term"
	"github.com/spf13/cobra"
)

// DiffOptions is what `nbs diff` was asked to do.
type DiffOptions struct {
	f    *Factory
	Dir  string
	Copy string
	// CopyBases are where kept copies are looked for when Copy is "".
	CopyBases []string
	Stat      bool
}

func newCmdDiff(f *Factory) *cobra.Command {
	opts := &DiffOptions{f: f, CopyBases: defaultCopyBases()}
	cmd := &cobra.Command{
		Use:   "diff [--stat] DIR [COPY]",
		Short: "Show what changed in a sandbox's kept copy of a build directory",
		Long: `Compare the kept build directory DIR with what 'nbs shell --keep DIR'
kept of /build (by default the newest kept of DIR: a copy, or the changes
a copy-on-write view made, where a deletion is a deletion) and print what
changed, as a patch: a unified diff for each text file that was
changed, added or removed, with the names a/PATH (DIR) and b/PATH (the
copy). A fix found in the sandbox goes straight into a patch file:

  nbs diff DIR > fix.patch        # apply with patch -p1 in DIR, or
                                  # -p2 in the source tree below it

What a unified diff cannot say comes as lines of its own, which patch
skips: "Binary files a/PATH and b/PATH differ", "Only in the copy: PATH/",
"Only in the kept directory: PATH", "Mode of PATH changed: 0644 -> 0755",
"Symlink PATH changed: OLD -> NEW".

Files whose modification time is unchanged count as unchanged (the copy
keeps the times), so comparing a big build directory reads only the files
the sandbox touched. --stat prints only the changed paths, one a line,
with A (added), D (removed) or M (changed). Output on a terminal is
colored unless NO_COLOR is set (and not empty).`,
		Example: `  nbs shell --keep /tmp/nix-build-wttr.drv-0   # fix it, exit
  nbs diff /tmp/nix-build-wttr.drv-0
  nbs diff /tmp/nix-build-wttr.drv-0 > fix.patch
  nbs diff --stat /tmp/nix-build-wttr.drv-0
  nbs diff /tmp/nix-build-wttr.drv-0 /tmp/nbs-123456/build`,
		Args: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 0:
				return &usageError{errors.New("diff: missing DIR, the kept build directory")}
			case len(args) > 2:
				return &usageError{errors.New("diff: takes DIR and at most one COPY")}
			}
			return nil
		},
		ValidArgsFunction: completeKeptDirs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Dir = args[0]
			if len(args) == 2 {
				opts.Copy = args[1]
			}
			return diffRun(opts)
		},
	}
	cmd.Flags().BoolVar(&opts.Stat, "stat", false, "list the changed paths only")
	return cmd
}

func diffRun(opts *DiffOptions) error {
	f := opts.f
	var kept string
	var err error
	// DIR as the sessions kept of it saw it.
	var dirStack diff.Stack
	if k, kerr := sandbox.ReadKeptCopy(opts.Dir); kerr == nil && k.View != nil {
		// Changes kept from a view, entered and kept again: DIR is the
		// kept directory with those changes on top.
		if err := k.View.Check(); err != nil {
			return fmt.Errorf("diff: %s holds the changes a session made, but %w", k.Dir, err)
		}
		kept = k.Dir
		for _, l := range k.View.Stack() {
			dirStack = append(dirStack, l.Path)
		}
	} else if kept, err = nix.FindBuildDir(opts.Dir); err != nil {
		return err
	} else {
		dirStack = diff.Stack{kept}
	}
	origin := sandbox.CanonicalDir(kept)
	var cp sandbox.KeptCopy
	if opts.Copy != "" {
		if cp, err = sandbox.ReadKeptCopy(opts.Copy); err != nil {
			return err
		}
		if cp.Origin != origin {
			fmt.Fprintf(f.Stderr, "nbs: warning: %s is a copy of %s, not of %s\n", oneLine(cp.Dir), oneLine(cp.Origin), oneLine(origin))
		}
	} else {
		found := false
		for _, c := range sandbox.KeptCopies(opts.CopyBases) {
			if c.Origin == origin {
				cp, found = c, true
				break
			}
		}
		if !found {
			return &hintError{fmt.Errorf("diff: no kept copy of %s in %s", origin, strings.Join(opts.CopyBases, " or ")),
				"keep one with: nbs shell --keep " + shquote.Paste(opts.Dir) + " (or name it: nbs diff DIR COPY)"}
		}
	}
	f.Log().Debug("comparing", "kept", kept, "copy", cp.Dir)
	// A copy is compared with DIR; a view's changes with what they lie
	// on, as the session saw it.
	old, changes, err := dirStack, []diff.Change(nil), error(nil)
	if v := cp.View; v != nil {
		if err := v.Check(); err != nil {
			return fmt.Errorf("diff: %s holds the changes a session made, but %w", cp.Dir, err)
		}
		old = nil
		for _, l := range v.Lower {
			old = append(old, l.Path)
		}
		changes, err = diff.OverlayOver(old, v.Upper, diff.Options{})
	} else {
		changes, err = diff.TreesOver(old, cp.Dir, diff.Options{})
	}
	if err == nil {
		if opts.Stat {
			err = writeStat(f.Stdout, changes)
		} else {
			newDir := cp.Dir
			if cp.View != nil {
				newDir = cp.View.Upper
			}
			err = writeDiff(f.Stdout, old, newDir, changes)
		}
	}
	if errors.Is(err, fs.ErrPermission) {
		return &hintError{err, "run it as root to read the files of Nix's build user: sudo nbs diff " + shquote.Paste(opts.Dir)}
	}
	return err
}

func writeStat(w io.Writer, changes []diff.Change) error {
	bw := bufio.NewWriter(w)
	for _, c := range changes {
		p := c.Path
		if c.Old.Mode.IsDir() || c.New.Mode.IsDir() {
			p += "/"
		}
		fmt.Fprintf(bw, "%c %s\n", c.Kind, oneLine(p))
	}
	return bw.Flush()
}

// writeDiff writes the patch, colored like git's on a terminal.
func writeDiff(out *os.File, kept diff.Stack, copy string, changes []diff.Change) error {
	if !terminal.IsTerminal(out) || terminal.NoColor() {
		return diff.WriteOver(out, kept, copy, changes)
	}
	var buf bytes.Buffer
	if err := diff.WriteOver(&buf, kept, copy, changes); err != nil {
		return err
	}
	bw := bufio.NewWriter(out)
	var c colorer
	for _, l := range strings.SplitAfter(buf.String(), "\n") {
		bw.WriteString(c.line(l))
	}
	return bw.Flush()
}

// colorer colors a patch line by line as git does: headers bold, hunk
// ranges cyan, removed lines red, added lines green. It counts the lines
// of each hunk, so a removed line that reads "--- x" is still red.
type colorer struct{ oldLeft, newLeft int }

func (c *colorer) line(l string) string {
	body := strings.TrimSuffix(l, "\n")
	if body == "" {
		return l
	}
	paint := func(code string) string { return "\x1b[" + code + "m" + body + "\x1b[0m" + l[len(body):] }
	if c.oldLeft > 0 || c.newLeft > 0 {
		switch body[0] {
		case ' ':
			c.oldLeft--
			c.newLeft--
			return l
		case '-':
			c.oldLeft--
			return paint("31")
		case '+':
			c.newLeft--
			return paint("32")
		}
	}
	switch {
	case body[0] == '\\':
		return l
	case strings.HasPrefix(body, "@@ "):
		c.oldLeft, c.newLeft = hunkCounts(body)
		return paint("36")
	}
	return paint("1")
}

// hunkCounts reads the line counts of "@@ -L[,N] +L[,N] @@".
func hunkCounts(h string) (int, int) {
	f := strings.Fields(h)
	if len(f) < 3 {
		return 0, 0
	}
	count := func(r string) int {
		if _, n, ok := strings.Cut(r, ","); ok {
			v, _ := strconv.Atoi(n)
			return v
		}
		return 1
	}
	return count(f[1]), count(f[2])
}
