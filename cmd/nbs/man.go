package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

func newCmdMan(f *Factory) *cobra.Command {
	return &cobra.Command{
		Use:   "man",
		Short: "Print nbs's manual page (roff) on stdout",
		Long: `Print the manual page nbs(1), made from the commands' own help, as roff
on stdout: read it with man, or install it where man finds pages.`,
		Example: `  nbs man | man -l -
  nbs man > /usr/local/share/man/man1/nbs.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return writeMan(f.Stdout, cmd.Root())
		},
	}
}

// manText is the annotation that holds a command's description for the
// manual page when it says more than --help (nbs build's details).
const manText = "man"

// manEnvironment and manExit are the sections no command's help holds.
const (
	manEnvironment = `TMPDIR
Where nbs makes its work directories (nbs-XXXXXX: the copy of the kept
directory, the sandbox's /tmp and /nix/store) and one of the places nbs
list looks for kept build directories.

NO_COLOR
When set and not empty, nbs prints no colors (the sandbox's prompt,
nbs diff, also on a remote builder).

NIX_PATH
Where --with finds <nixpkgs> to build a tool given by attribute name.

NBS_PROGRESS_DELAY
Seconds a copy of a kept directory runs before a progress bar appears
on a terminal; 0.5 by default.

SUDO_UID, SUDO_GID
Under sudo, the user the sandbox runs as and the copy is handed to.`
	manExit = `nbs shell exits with the status of the command or shell in the sandbox,
128+N when signal N killed it. nbs build exits with nix-build's status,
or with the command's under --run. Otherwise: 0 on success, 1 when nbs
itself failed (one line on stderr says why), 2 for a wrong command line.`
)

// writeMan writes one page for the whole command tree: its synopsis,
// every command with its description (its --help text, or its manText
// annotation where that says more), options and examples, and the
// sections that hold for all of them.
func writeMan(w io.Writer, root *cobra.Command) error {
	b := bufio.NewWriter(w)
	name := root.Name()
	fmt.Fprintf(b, ".TH %s 1 \"\" %s \"User Commands\"\n", strings.ToUpper(name), roffQuote(name+" "+root.Version))
	fmt.Fprintf(b, ".SH NAME\n%s \\- %s\n", name, roffEscape(root.Short))
	b.WriteString(".SH SYNOPSIS\n")
	cmds := manCommands(root)
	for _, c := range cmds {
		fmt.Fprintf(b, "\\fB%s\\fR %s\n.br\n", roffEscape(c.CommandPath()), roffEscape(strings.TrimSpace(strings.TrimPrefix(c.Use, c.Name()))))
	}
	b.WriteString(".SH DESCRIPTION\n")
	roffText(b, root.Long)
	b.WriteString(".SH COMMANDS\n")
	for _, c := range cmds {
		fmt.Fprintf(b, ".SS %s\n", roffQuote(c.CommandPath()+strings.TrimPrefix(c.Use, c.Name())))
		text := c.Long
		if m, ok := c.Annotations[manText]; ok {
			text = m
		}
		if text == "" {
			text = c.Short
		}
		roffText(b, text)
		if hasManFlags(c.LocalFlags()) {
			b.WriteString(".PP\nOptions:\n")
			roffFlags(b, c.LocalFlags())
		}
		if c.Example != "" {
			b.WriteString(".PP\nExamples:\n.PP\n.RS 4\n.nf\n")
			for _, l := range strings.Split(c.Example, "\n") {
				b.WriteString(roffLine(strings.TrimPrefix(l, "  ")) + "\n")
			}
			b.WriteString(".fi\n.RE\n")
		}
	}
	b.WriteString(".SH OPTIONS\nFor every command:\n")
	roffFlags(b, root.PersistentFlags())
	b.WriteString(".TP\n.B \\-\\-help, \\-h\nprint the command's help\n")
	b.WriteString(".TP\n.B \\-\\-version\nprint nbs's version\n")
	b.WriteString(".SH ENVIRONMENT\n")
	for _, para := range strings.Split(manEnvironment, "\n\n") {
		head, body, _ := strings.Cut(para, "\n")
		fmt.Fprintf(b, ".TP\n.B %s\n%s\n", roffEscape(head), roffEscape(body))
	}
	b.WriteString(".SH EXIT STATUS\n")
	roffText(b, manExit)
	b.WriteString(".SH SEE ALSO\n.BR nix-build (1),\n.BR nix.conf (5)\n")
	return b.Flush()
}

// manCommands are the commands a user runs, depth first.
func manCommands(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, s := range c.Commands() {
			if !s.IsAvailableCommand() || s.Name() == "help" {
				continue
			}
			out = append(out, s)
			walk(s)
		}
	}
	walk(root)
	return out
}

// manFlag: --help is everywhere and said once, under OPTIONS.
func manFlag(fl *pflag.Flag) bool { return !fl.Hidden && fl.Name != "help" }

func hasManFlags(fs *pflag.FlagSet) bool {
	n := 0
	fs.VisitAll(func(fl *pflag.Flag) {
		if manFlag(fl) {
			n++
		}
	})
	return n > 0
}

func roffFlags(b *bufio.Writer, fs *pflag.FlagSet) {
	fs.VisitAll(func(fl *pflag.Flag) {
		if !manFlag(fl) {
			return
		}
		varname, usage := pflag.UnquoteUsage(fl)
		head := "\\-\\-" + roffEscape(fl.Name)
		if fl.Shorthand != "" {
			head = "\\-" + roffEscape(fl.Shorthand) + ", " + head
		}
		if varname != "" {
			head += " \\fI" + roffEscape(varname) + "\\fR"
		}
		fmt.Fprintf(b, ".TP\n\\fB%s\\fR\n%s\n", head, roffEscape(usage))
	})
}

// roffText writes help text: paragraphs at blank lines, filled; indented
// lines (a table, commands) stay as they are laid out.
func roffText(b *bufio.Writer, text string) {
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		b.WriteString(".PP\n")
		laidOut := false
		for _, l := range strings.Split(para, "\n") {
			indented := strings.HasPrefix(l, " ")
			switch {
			case indented && !laidOut:
				b.WriteString(".nf\n")
			case !indented && laidOut:
				b.WriteString(".fi\n")
			}
			laidOut = indented
			if !indented {
				l = strings.TrimSpace(l)
			}
			b.WriteString(roffLine(l) + "\n")
		}
		if laidOut {
			b.WriteString(".fi\n")
		}
	}
}

// roffLine escapes a line of text, also one that starts like a request.
func roffLine(l string) string {
	l = roffEscape(l)
	if strings.HasPrefix(l, ".") || strings.HasPrefix(l, "'") {
		l = "\\&" + l
	}
	return l
}

// roffEscape makes text literal for roff: backslashes; minus signs,
// which must stay ASCII hyphens for copied commands to work; and
// characters beyond ASCII as \[uXXXX], which every troff reads.
func roffEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\e`)
		case r == '-':
			b.WriteString(`\-`)
		case r > 0x7e:
			fmt.Fprintf(&b, `\[u%04X]`, r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func roffQuote(s string) string {
	return `"` + strings.ReplaceAll(roffEscape(s), `"`, `\(dq`) + `"`
}
