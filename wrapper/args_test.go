package wrapper

import (
	"strings"
	"testing"
)

// show is a command line as readArgs read it: options with their values
// in brackets, positional arguments as they are, "--" where it ended the
// options.
func show(c cmdline) string {
	type item struct {
		at   int
		text string
	}
	var items []item
	for _, o := range c.Options {
		var vs []string
		for _, v := range o.Values {
			vs = append(vs, v.Text)
		}
		items = append(items, item{o.At, o.Name + "[" + strings.Join(vs, ",") + "]"})
	}
	for _, p := range c.Positional {
		items = append(items, item{p.At, p.Text})
	}
	if c.DashDash >= 0 {
		items = append(items, item{c.DashDash, "--"})
	}
	// Stable by index; parts of one argument keep their order.
	var out []string
	for at := 0; len(items) > 0; at++ {
		rest := items[:0:0]
		for _, it := range items {
			if it.at == at {
				out = append(out, it.text)
			} else {
				rest = append(rest, it)
			}
		}
		items = rest
	}
	return strings.Join(out, " ")
}

func TestReadArgs(t *testing.T) {
	cases := []struct {
		syntax syntax
		args   []string
		want   string
	}{
		{legacySyntax, []string{"-A", "hello", "-K", "x.nix"}, "-A[hello] -K[] x.nix"},
		{legacySyntax, []string{"--arg", "a", "1", "--argstr", "tag", "v1#rc", "./default.nix"}, "--arg[a,1] --argstr[tag,v1#rc] ./default.nix"},
		{legacySyntax, []string{"--option", "builders", "ssh://a", "-I", "nixpkgs=flake:nixpkgs", "f.nix"}, "--option[builders,ssh://a] -I[nixpkgs=flake:nixpkgs] f.nix"},
		{legacySyntax, []string{"-o", "out", "--max-jobs", "0", "--cores", "2", "--builders", "", "."}, "-o[out] --max-jobs[0] --cores[2] --builders[] ."},
		// Values are taken whatever they look like, "--" included.
		{legacySyntax, []string{"--argstr", "x", "-K", "-A", "--", "f"}, "--argstr[x,-K] -A[--] f"},
		// "--" ends the options, once.
		{legacySyntax, []string{"-K", "--", "-A", "x", "--"}, "-K[] -- -A x --"},
		// Compound short options, as Args::parseCmdline expands them.
		{legacySyntax, []string{"-vK", "-j4", "-KA", "x"}, "-v[] -K[] -j[4] -K[] -A[x]"},
		{legacySyntax, []string{"-AK", "x"}, "-A[-K] x"},
		// nix-build's -E is a switch; nix build's --expr takes the expression.
		{legacySyntax, []string{"-E", "import ./x.nix # note"}, "-E[] import ./x.nix # note"},
		{newSyntax, []string{"build", "--expr", "import ./x.nix # note"}, "build --expr[import ./x.nix # note]"},
		// Settings: non-booleans and every --extra- form take a value.
		{newSyntax, []string{"--extra-experimental-features", "nix-command flakes", "build", "--sandbox", "--log-format", "bar", ".#a"},
			"--extra-experimental-features[nix-command flakes] build --sandbox[] --log-format[bar] .#a"},
		{legacySyntax, []string{"--store", "ssh://h", "--no-keep-failed", "--unknown", "x"}, "--store[ssh://h] --no-keep-failed[] --unknown[] x"},
		// The command line ends before the values do.
		{legacySyntax, []string{"f", "--arg", "a"}, "f --arg[a]"},
		{legacySyntax, nil, ""},
	}
	for _, c := range cases {
		if got := show(readArgs(c.syntax, c.args)); got != c.want {
			t.Errorf("readArgs(%q)\n got %s\nwant %s", c.args, got, c.want)
		}
	}
}

func TestDefaultProgram(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"./default.nix"}, "nix-build"},
		{[]string{".#pkg"}, "nix"},
		{[]string{"."}, "nix"},
		{[]string{"github:NixOS/nixpkgs#hello"}, "nix"},
		{[]string{"-j", "4", "."}, "nix"},
		{[]string{"--file", "x.nix", "a"}, "nix"},
		{[]string{"-f", "x.nix", "a#b"}, "nix"},
		{[]string{"-A", "hello", "<nixpkgs>"}, "nix-build"},
		// The value of an option is no flake reference.
		{[]string{"--argstr", "tag", "v1#rc", "./default.nix"}, "nix-build"},
		{[]string{"-E", "import ./x.nix # note"}, "nix-build"},
		{[]string{"--expr", "(import ./x.nix {}).a # note"}, "nix-build"},
		{[]string{"-I", "nixpkgs=flake:nixpkgs", "-A", "hello", "<nixpkgs>"}, "nix-build"},
		{[]string{"-A", "packages.x86_64-linux#x", "f.nix"}, "nix-build"},
		{[]string{"--option", "substituters", "path:/x", "f.nix"}, "nix-build"},
		// After "--" a file may be called anything, -f included.
		{[]string{"--", "-f"}, "nix-build"},
	}
	for _, c := range cases {
		if got := DefaultProgram(c.args); got != c.want {
			t.Errorf("DefaultProgram(%q) = %s; want %s", c.args, got, c.want)
		}
	}
}

// TestCommandFlakeValues: a '#' in the value of an option keeps the
// build with nix-build, with nbs's additions in front.
func TestCommandFlakeValues(t *testing.T) {
	for _, args := range [][]string{
		{"--argstr", "tag", "v1#rc", "./default.nix"},
		{"-E", "import ./x.nix # note"},
	} {
		inv := Command("", args, nil, nil)
		want := append([]string{"--keep-failed"}, args...)
		if inv.Program != "nix-build" || strings.Join(inv.Args, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("Command(%q) = %s %q; want nix-build %q", args, inv.Program, inv.Args, want)
		}
	}
}

func TestFirstOption(t *testing.T) {
	nbs := []string{"--run", "--no-shell", "--nix-build", "--with"}
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-A", "x", "--run", "y"}, "--run"},
		{[]string{"f.nix", "--with=gdb"}, "--with"},
		{[]string{"--argstr", "cmd", "--run", "f.nix"}, ""},
		{[]string{"--", "--no-shell"}, ""},
		{[]string{"--runner"}, ""},
	}
	for _, c := range cases {
		if got := FirstOption(c.args, nbs...); got != c.want {
			t.Errorf("FirstOption(%q) = %q; want %q", c.args, got, c.want)
		}
	}
}

func TestWhyNotKept(t *testing.T) {
	keep := "?remote-program=nix-daemon%20--option%20keep-failed%20true"
	cases := []struct {
		inv  Invocation
		fl   Failure
		want NotKept
	}{
		{Invocation{KeepFailedOff: true}, Failure{Builder: "ssh://b"}, KeepFailedOff},
		{Invocation{}, Failure{Builder: "ssh://b", KeptRemote: true}, KeptSomewhere},
		{Invocation{}, Failure{Builder: "ssh-ng://b" + keep}, DaemonIgnored},
		{Invocation{}, Failure{Builder: "ssh://b?remote-program=nix-store%20--option%20keep-failed%20true"}, BuilderIgnored},
		{Invocation{}, Failure{Builder: "ssh-ng://b"}, NeverPassedSSHNG},
		{Invocation{}, Failure{Builder: "ssh://b"}, RootOnly},
	}
	for _, c := range cases {
		if got := c.inv.WhyNotKept(c.fl); got != c.want {
			t.Errorf("WhyNotKept(%+v) = %d; want %d", c.fl, got, c.want)
		}
	}
}

// FuzzReadArgs: any command line is read without a panic, every
// argument is read once (an option, a value, a positional argument or
// the "--"), nothing after the "--" is an option or a value, and nbs's
// additions never go after it.
func FuzzReadArgs(f *testing.F) {
	f.Add("--argstr\x00tag\x00v1#rc\x00./default.nix", false)
	f.Add("-E\x00import ./x.nix # note", false)
	f.Add("build\x00--expr\x00e\x00--\x00-K", true)
	f.Add("-vK\x00-j4\x00-AK\x00--\x00--builders\x00x", false)
	f.Add("-v--\x00-x\x00--option\x00builders\x00ssh://a", true)
	f.Fuzz(func(t *testing.T, joined string, newCLI bool) {
		args := strings.Split(joined, "\x00")
		s, program := legacySyntax, "nix-build"
		if newCLI {
			s, program = newSyntax, "nix"
		}
		c := readArgs(s, args)
		whole := make([]int, len(args)) // how often each argument was read whole
		parts := make([]bool, len(args))
		count := func(w word) {
			if w.At < 0 || w.At >= len(args) {
				t.Fatalf("%q: word %+v outside the command line", args, w)
			}
			if w.Part {
				parts[w.At] = true
			} else {
				whole[w.At]++
			}
		}
		for _, o := range c.Options {
			count(word{Text: o.Name, At: o.At, Part: o.Name != args[o.At]})
			if c.DashDash >= 0 && o.At > c.DashDash {
				t.Fatalf("%q: option %s after --", args, o.Name)
			}
			for _, v := range o.Values {
				count(v)
				if c.DashDash >= 0 && v.At > c.DashDash {
					t.Fatalf("%q: value %q of %s after --", args, v.Text, o.Name)
				}
			}
		}
		for _, p := range c.Positional {
			count(p)
		}
		if c.DashDash >= 0 {
			if args[c.DashDash] == "--" {
				whole[c.DashDash]++
			} else {
				parts[c.DashDash] = true
			}
		}
		for i := range args {
			if whole[i] > 1 || whole[i] == 1 && parts[i] || whole[i] == 0 && !parts[i] {
				t.Fatalf("%q: argument %d (%q) read %d times whole, in parts %v", args, i, args[i], whole[i], parts[i])
			}
		}
		// Command's steps, without its reading of @FILE builders.
		out := withBuilders(program, withFeatures(program, buildArgs(program, args), []string{"nix-command"}), "NEW")
		if c.DashDash >= 0 {
			tail := strings.Join(args[c.DashDash:], "\x00")
			if !strings.HasSuffix(strings.Join(out, "\x00"), tail) {
				t.Fatalf("%q: nbs added after --: %q", args, out)
			}
		}
		_ = DefaultProgram(args)
	})
}

func TestSandboxSetting(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		ok   bool
	}{
		{[]string{"-A", "x"}, "", false},
		{[]string{"--option", "sandbox", "false", "-A", "x"}, "false", true},
		{[]string{"--no-sandbox", "."}, "false", true},
		{[]string{"--no-sandbox", "--sandbox"}, "true", true},
		{[]string{"--relaxed-sandbox"}, "relaxed", true},
		// A value, not an option; after --, a file.
		{[]string{"-A", "--no-sandbox"}, "", false},
		{[]string{"--", "--no-sandbox"}, "", false},
	} {
		got, ok := SandboxSetting("nix-build", c.args)
		if got != c.want || ok != c.ok {
			t.Errorf("%q: %q, %v; want %q, %v", c.args, got, ok, c.want, c.ok)
		}
	}
}
