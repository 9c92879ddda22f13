package wrapper

import "strings"

// The command lines of nix-build and nix build, read the way Nix reads
// them (libutil/args.cc, Args::parseCmdline, and nix-build.cc,
// main_nix_build), so that nbs never takes the value of an option for a
// file, a flake reference or an option of its own:
//
//   - "--" ends the options: every argument after it is positional.
//   - An option takes a fixed number of values, the arguments that follow
//     it, whatever they look like ("--argstr x -K" sets x to "-K").
//   - "-vK" is "-v -K", and "-j4" is "-j 4": letters after a single dash
//     are options of their own, the rest from the first non-letter on is
//     the next argument.
//   - Every setting of nix.conf is an option, "--NAME VALUE" (or "--NAME"
//     and "--no-NAME" for a boolean one), "--extra-NAME VALUE" for a list.
//
// Unknown options take no value; Nix rejects them anyway.

// syntax is the command line being read: nix-build's or the new CLI's.
// They differ in one option: nix-build's -E/--expr is a switch (its
// positional arguments are then expressions), nix build's --expr takes
// the expression.
type syntax int

const (
	legacySyntax syntax = iota // nix-build
	newSyntax                  // nix (nix build)
)

// syntaxOf is the syntax of program, a name or a path.
func syntaxOf(program string) syntax {
	if isNewCLI(program) {
		return newSyntax
	}
	return legacySyntax
}

// optionValues is how many values an option of nix-build or nix build
// takes, beyond the settings (settingsWithValue), from nix-build(1) and
// `nix build --help` of Nix 2.8 and the options Nix added up to 2.34
// (--arg-from-file, --arg-from-stdin, --reference-lock-file,
// --output-lock-file).
var optionValues = map[string]int{
	"--arg": 2, "--argstr": 2, "--arg-from-file": 2, "--arg-from-stdin": 1,
	"--option": 2, "-A": 1, "--attr": 1, "-I": 1, "--include": 1,
	"-o": 1, "--out-link": 1, "--drv-link": 1, "--add-root": 1,
	"-f": 1, "--file": 1, "-j": 1, "--log-format": 1, "--eval-store": 1,
	"--profile": 1, "--override-input": 2, "--override-flake": 2, "--update-input": 1,
	"--inputs-from": 1, "--reference-lock-file": 1, "--output-lock-file": 1,
}

// settingsWithValue are the settings that are not booleans, so that
// "--NAME" takes a value: those `nix --help` lists with one in Nix 2.8,
// and the later ones nbs has met (build-dir, eval-system, …).
var settingsWithValue = setOf(`access-tokens allowed-impure-host-deps allowed-uris
	allowed-users bash-prompt bash-prompt-prefix bash-prompt-suffix build-dir build-hook
	build-poll-interval build-users-group builders commit-lockfile-summary
	connect-timeout cores diff-hook download-attempts download-buffer-size
	eval-system experimental-features extra-platforms flake-registry
	gc-reserved-space hashed-mirrors http-connections ignored-acls log-lines
	max-build-log-size max-call-depth max-free max-jobs max-silent-time min-free
	min-free-check-interval nar-buffer-size narinfo-cache-negative-ttl
	narinfo-cache-positive-ttl netrc-file nix-path plugin-files post-build-hook
	pre-build-hook repeat sandbox-build-dir sandbox-dev-shm-size sandbox-paths
	secret-key-files ssl-cert-file stalled-download-timeout store substituters
	system system-features tarball-ttl timeout trusted-public-keys
	trusted-substituters trusted-users upgrade-nix-store-path-url user-agent-suffix`)

func setOf(words string) map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(words) {
		m[w] = true
	}
	return m
}

// valuesOf is how many values the option name takes in syntax s.
func valuesOf(s syntax, name string) int {
	switch {
	case name == "--expr" && s == newSyntax:
		return 1
	case name == "--expr" || name == "-E":
		return 0
	case strings.HasPrefix(name, "--extra-"):
		return 1 // only list settings have an extra- form
	}
	if n, ok := optionValues[name]; ok {
		return n
	}
	if settingsWithValue[strings.TrimPrefix(name, "--")] {
		return 1
	}
	return 0
}

// word is one argument, or the part of one that Nix reads as an argument
// of its own (the "K" of "-vK", the "4" of "-j4").
type word struct {
	Text string
	At   int  // index of the argument it is in
	Part bool // a part of that argument, not all of it
}

// option is one option on the command line with its values.
type option struct {
	Name   string // "--arg", "-K"
	At     int    // index of the argument it is in
	Values []word // fewer than it takes when the command line ends first
}

// value returns the text of value n, "" when it is missing.
func (o option) value(n int) string {
	if n < len(o.Values) {
		return o.Values[n].Text
	}
	return ""
}

// cmdline is a command line of nix-build or nix as Nix reads it.
type cmdline struct {
	Options []option
	// Positional are the files, expressions, flake references,
	// attributes and (new CLI) the subcommand, in order.
	Positional []word
	// DashDash is the index of the "--" that ends the options, -1 when
	// there is none.
	DashDash int
}

// readArgs reads args as Nix does (see the top of this file). It reads
// any input; a command line Nix rejects gives some reading of it.
func readArgs(s syntax, args []string) cmdline {
	c := cmdline{DashDash: -1}
	words := make([]word, len(args))
	for i, a := range args {
		words[i] = word{Text: a, At: i}
	}
	for len(words) > 0 {
		w := words[0]
		words = words[1:]
		switch {
		case c.DashDash >= 0 || !strings.HasPrefix(w.Text, "-"):
			c.Positional = append(c.Positional, w)
			continue
		case w.Text == "--":
			c.DashDash = w.At
			continue
		case len(w.Text) > 2 && w.Text[1] != '-' && isLetter(w.Text[1]):
			// Args::parseCmdline expands "-abc" into "-a -b -c" and
			// "-j3" into "-j 3" before it reads the first of them.
			words = append(expand(w), words...)
			w = words[0]
			words = words[1:]
		}
		o := option{Name: w.Text, At: w.At}
		n := min(valuesOf(s, w.Text), len(words))
		o.Values = append(o.Values, words[:n]...)
		words = words[n:]
		c.Options = append(c.Options, o)
	}
	return c
}

// expand splits a compound short option: "-vK" into "-v" and "-K",
// "-j4" into "-j" and "4".
func expand(w word) []word {
	var out []word
	i := 1
	for ; i < len(w.Text) && isLetter(w.Text[i]); i++ {
		out = append(out, word{Text: "-" + w.Text[i:i+1], At: w.At, Part: true})
	}
	if i < len(w.Text) {
		out = append(out, word{Text: w.Text[i:], At: w.At, Part: true})
	}
	return out
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

// has reports whether one of names is given as an option.
func (c cmdline) has(names ...string) bool {
	for _, o := range c.Options {
		for _, n := range names {
			if o.Name == n {
				return true
			}
		}
	}
	return false
}

// settingValues are the values given to one of names (options that take
// one value: --builders) and to "--option NAME" for one of settings, in
// order; Nix takes the last.
func (c cmdline) settingValues(names []string, settings ...string) []word {
	var out []word
	for _, o := range c.Options {
		switch {
		case o.Name == "--option" && len(o.Values) == 2 && contains(settings, o.Values[0].Text):
			out = append(out, o.Values[1])
		case len(o.Values) == 1 && contains(names, o.Name):
			out = append(out, o.Values[0])
		}
	}
	return out
}

// optionFor reports whether "--option NAME …" is given for one of names.
func (c cmdline) optionFor(names ...string) bool {
	for _, o := range c.Options {
		if o.Name == "--option" && len(o.Values) > 0 && contains(names, o.Values[0].Text) {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, l := range list {
		if l == s {
			return true
		}
	}
	return false
}

// subcommand is the index of the new CLI's "build" subcommand (the
// first positional argument before any "--"), -1 when it is not given.
func (c cmdline) subcommand() int {
	if len(c.Positional) == 0 {
		return -1
	}
	p := c.Positional[0]
	if p.Text != "build" || p.Part || c.DashDash >= 0 && p.At > c.DashDash {
		return -1
	}
	return p.At
}

// flakeRefs reports whether a positional argument is a flake reference,
// which only the new CLI builds: not with --expr or -f/--file, whose
// positional arguments are expressions or attributes.
func (c cmdline) flakeRefs() bool {
	if c.has("-E", "--expr", "-f", "--file") {
		return false
	}
	for _, p := range c.Positional {
		if isFlakeRef(p.Text) {
			return true
		}
	}
	return false
}

// isFlakeRef reports whether a looks like a flake reference: ".", an
// output (contains '#') or a URL of a flake input type.
func isFlakeRef(a string) bool {
	if a == "." || strings.Contains(a, "#") {
		return true
	}
	for _, p := range []string{"path:", "github:", "gitlab:", "sourcehut:", "git+", "flake:", "tarball+", "file+"} {
		if strings.HasPrefix(a, p) {
			return true
		}
	}
	return false
}

// DefaultProgram is the program nbs runs for the user's arguments when
// they do not choose one: "nix" (nix build, the new CLI) when an
// argument that is not an option's value is a flake reference, or when
// -f/--file is given (only the new CLI has it), else "nix-build".
func DefaultProgram(userArgs []string) string {
	c := readArgs(legacySyntax, userArgs)
	if c.has("-f", "--file") || c.flakeRefs() {
		return "nix"
	}
	return "nix-build"
}

// FirstOption returns the first of names given as an option in args
// (as NAME or NAME=VALUE; not as a value, not after "--"), "" if none.
func FirstOption(args []string, names ...string) string {
	for _, o := range readArgs(legacySyntax, args).Options {
		for _, n := range names {
			if o.Name == n || strings.HasPrefix(o.Name, n+"=") {
				return n
			}
		}
	}
	return ""
}

// SandboxSetting is the sandbox setting args give the build ("true",
// "false" or "relaxed"; the last one wins, as in Nix), ok false when they
// give none: --option sandbox V, and the flags Nix makes of it
// (BaseSetting<SandboxMode>::convertToArg in src/libstore/globals.cc):
// --sandbox, --no-sandbox, --relaxed-sandbox.
func SandboxSetting(program string, args []string) (value string, ok bool) {
	for _, o := range readArgs(syntaxOf(program), args).Options {
		switch {
		case o.Name == "--option" && len(o.Values) == 2 && o.Values[0].Text == "sandbox":
			value, ok = o.Values[1].Text, true
		case o.Name == "--sandbox":
			value, ok = "true", true
		case o.Name == "--no-sandbox":
			value, ok = "false", true
		case o.Name == "--relaxed-sandbox":
			value, ok = "relaxed", true
		}
	}
	return value, ok
}
