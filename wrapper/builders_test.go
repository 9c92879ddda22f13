package wrapper

import (
	"errors"
	"io/fs"
	"strings"
	"testing"
)

func TestKeepFailedURI(t *testing.T) {
	cases := []struct {
		in, want string
		changed  bool
	}{
		// The two forms the issue measured with Nix 2.8.
		{"ssh-ng://HOST", "ssh-ng://HOST?remote-program=nix-daemon%20--option%20keep-failed%20true", true},
		{"ssh://HOST", "ssh://HOST?remote-program=nix-store%20--option%20keep-failed%20true", true},
		{"ssh://me@host:2222", "ssh://me@host:2222?remote-program=nix-store%20--option%20keep-failed%20true", true},
		// Other parameters stay as written, in their order.
		{"ssh://h?compress=true&ssh-key=/k%20ey", "ssh://h?compress=true&ssh-key=/k%20ey&remote-program=nix-store%20--option%20keep-failed%20true", true},
		// The user's remote-program keeps its value, with the option appended.
		{"ssh-ng://h?remote-program=/run/current-system/sw/bin/nix-daemon&max-connections=2",
			"ssh-ng://h?remote-program=/run/current-system/sw/bin/nix-daemon%20--option%20keep-failed%20true&max-connections=2", true},
		{"ssh://h?remote-program=nix-store%20--store%20/x", "ssh://h?remote-program=nix-store%20--store%20/x%20--option%20keep-failed%20true", true},
		// Already asked for: unchanged.
		{"ssh-ng://h?remote-program=nix-daemon%20--option%20keep-failed%20true", "ssh-ng://h?remote-program=nix-daemon%20--option%20keep-failed%20true", false},
		{"ssh://h?remote-program=nix-store%20--option%20keep-failed%20false", "ssh://h?remote-program=nix-store%20--option%20keep-failed%20false", false},
		// Not an ssh builder.
		{"local", "local", false},
		{"daemon", "daemon", false},
		{"unix:///run/nix.sock", "unix:///run/nix.sock", false},
		{"/var/store", "/var/store", false},
	}
	for _, c := range cases {
		got, changed := KeepFailedURI(c.in)
		if got != c.want || changed != c.changed {
			t.Errorf("KeepFailedURI(%q) = %q, %v; want %q, %v", c.in, got, changed, c.want, c.changed)
		}
	}
}

func files(m map[string]string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		s, ok := m[name]
		if !ok {
			return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
		}
		return []byte(s), nil
	}
}

func TestParseBuilders(t *testing.T) {
	read := files(map[string]string{
		"/etc/nix/machines": "# the builders\nssh://a x86_64-linux /root/.ssh/a 4 1 kvm - c3NoLWVkMjU1MTkgQUFBQQ==\n\nb aarch64-linux ; @/etc/nix/more # more\n",
		"/etc/nix/more":     "ssh-ng://c\n",
		"/etc/nix/loop":     "@/etc/nix/loop\n",
	})
	bs, err := ParseBuilders("@/etc/nix/machines; ssh://d?x=1 - -\n@/nonexistent", read)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range bs {
		got = append(got, b.Line()+" key="+b.Key()+" hostkey="+b.HostKey())
	}
	want := []string{
		"ssh://a x86_64-linux /root/.ssh/a 4 1 kvm - c3NoLWVkMjU1MTkgQUFBQQ== key=/root/.ssh/a hostkey=c3NoLWVkMjU1MTkgQUFBQQ==",
		"ssh://b aarch64-linux key= hostkey=",
		"ssh-ng://c key= hostkey=",
		"ssh://d?x=1 - - key= hostkey=",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := ParseBuilders("@/etc/nix/loop", read); err == nil {
		t.Error("a file including itself was accepted")
	}
	denied := func(string) ([]byte, error) { return nil, errors.New("permission denied") }
	if _, err := ParseBuilders("@/etc/nix/machines", denied); err == nil {
		t.Error("an unreadable machines file was ignored")
	}
}

func TestRewriteBuilders(t *testing.T) {
	read := files(map[string]string{"/m": "ssh-ng://b x86_64-linux /k\n"})
	cases := []struct {
		in, want string
		changed  bool
	}{
		{"ssh://a x86_64-linux", "ssh://a?remote-program=nix-store%20--option%20keep-failed%20true x86_64-linux", true},
		{"nix-docker x86_64-linux", "ssh://nix-docker?remote-program=nix-store%20--option%20keep-failed%20true x86_64-linux", true},
		{"@/m; local", "ssh-ng://b?remote-program=nix-daemon%20--option%20keep-failed%20true x86_64-linux /k ; local", true},
		{"local", "local", false},
		{"", "", false},
		{"@/missing", "@/missing", false},
	}
	for _, c := range cases {
		got, _, changed, err := RewriteBuilders(c.in, read)
		if err != nil || got != c.want || changed != c.changed {
			t.Errorf("RewriteBuilders(%q) = %q, %v, %v; want %q, %v", c.in, got, changed, err, c.want, c.changed)
		}
	}
	// What Nix then prints is recognised as the user's builder.
	_, bs, _, _ := RewriteBuilders("ssh://a x86_64-linux", read)
	if len(bs) != 1 || !bs[0].SameBuilder("ssh://a?remote-program=nix-store%20--option%20keep-failed%20true") || !bs[0].SameBuilder("ssh://a") || bs[0].SameBuilder("ssh://b") {
		t.Errorf("SameBuilder: %+v", bs)
	}
}

func TestBuildersArgs(t *testing.T) {
	cases := []struct {
		program string
		args    []string
		value   string
		given   bool
		want    []string
	}{
		{"nix-build", []string{"--keep-failed", "-A", "x", "f.nix"}, "", false,
			[]string{"--builders", "NEW", "--keep-failed", "-A", "x", "f.nix"}},
		{"nix", []string{"build", "--keep-failed", "-L", ".#x"}, "", false,
			[]string{"build", "--builders", "NEW", "--keep-failed", "-L", ".#x"}},
		{"nix-build", []string{"--builders", "ssh://a x86_64-linux", "f.nix"}, "ssh://a x86_64-linux", true,
			[]string{"--builders", "NEW", "f.nix"}},
		{"nix-build", []string{"--option", "builders", "ssh://a", "--builders", "ssh://b", "f.nix"}, "ssh://b", true,
			[]string{"--option", "builders", "NEW", "--builders", "NEW", "f.nix"}},
		// Values of other options are not read as options.
		{"nix-build", []string{"--argstr", "builders", "--builders", "f.nix"}, "", false,
			[]string{"--builders", "NEW", "--argstr", "builders", "--builders", "f.nix"}},
		// After "--" nothing is an option.
		{"nix-build", []string{"--", "--builders", "x"}, "", false,
			[]string{"--builders", "NEW", "--", "--builders", "x"}},
	}
	for _, c := range cases {
		v, ok := readArgs(syntaxOf(c.program), c.args).builders()
		if v != c.value || ok != c.given {
			t.Errorf("BuildersArg(%q) = %q, %v; want %q, %v", c.args, v, ok, c.value, c.given)
		}
		got := withBuilders(c.program, c.args, "NEW")
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("WithBuilders(%q) = %q; want %q", c.args, got, c.want)
		}
	}
}

func TestKeepFailedRefused(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{[]string{"--no-keep-failed"}, true},
		{[]string{"--option", "keep-failed", "false"}, true},
		{[]string{"--option", "keep-failed", "true"}, false},
		{[]string{"--argstr", "x", "--no-keep-failed"}, false},
		{[]string{"-K"}, false},
	} {
		if got := keepFailedOff(readArgs(legacySyntax, c.args)); got != c.want {
			t.Errorf("KeepFailedRefused(%q) = %v", c.args, got)
		}
	}
}

func TestWithFeatures(t *testing.T) {
	both := []string{"nix-command", "flakes"}
	cases := []struct {
		program  string
		args     []string
		features []string
		want     []string
	}{
		{"nix", []string{"build", "--keep-failed", ".#x"}, both,
			[]string{"build", "--extra-experimental-features", "nix-command flakes", "--keep-failed", ".#x"}},
		{"/usr/bin/nix", []string{"build", "-f", "x.nix", "a"}, []string{"nix-command"},
			[]string{"build", "--extra-experimental-features", "nix-command", "-f", "x.nix", "a"}},
		{"nix", []string{"build", ".#x"}, nil, []string{"build", ".#x"}},
		{"nix-build", []string{"f.nix"}, both, []string{"f.nix"}},
		// The user's own choice stands.
		{"nix", []string{"--experimental-features", "nix-command", "build", ".#x"}, both,
			[]string{"--experimental-features", "nix-command", "build", ".#x"}},
		{"nix", []string{"build", "--option", "experimental-features", "flakes", ".#x"}, both,
			[]string{"build", "--option", "experimental-features", "flakes", ".#x"}},
		{"nix", []string{"build", "--extra-experimental-features", "ca-derivations", ".#x"}, both,
			[]string{"build", "--extra-experimental-features", "nix-command flakes", "--extra-experimental-features", "ca-derivations", ".#x"}},
	}
	for _, c := range cases {
		got := withFeatures(c.program, c.args, c.features)
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("WithFeatures(%s, %q) = %q; want %q", c.program, c.args, got, c.want)
		}
	}
}

func FuzzParseBuilders(f *testing.F) {
	f.Add("ssh://a x86_64-linux /k 4 1 kvm - AAAA; @/m # c\nb")
	f.Add("ssh-ng://h?remote-program=nix-daemon%20--option&x=%zz")
	read := files(map[string]string{"/m": "ssh://m\n@/m2", "/m2": "local"})
	f.Fuzz(func(t *testing.T, value string) {
		bs, err := ParseBuilders(value, read)
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.URI == "" || strings.ContainsAny(b.Line(), "\n;#") {
				t.Fatalf("bad builder %q from %q", b.Line(), value)
			}
			u, changed := KeepFailedURI(b.URI)
			if strings.ContainsAny(u, " \t\n;#") {
				t.Fatalf("KeepFailedURI(%q) = %q breaks the line", b.URI, u)
			}
			if changed && !b.SameBuilder(u) {
				t.Fatalf("SameBuilder does not recognise %q", u)
			}
		}
	})
}

// TestSameBuilderQueryOrder: Nix 2.34 prints a builder's query
// parameters sorted, not as written.
func TestSameBuilderQueryOrder(t *testing.T) {
	b := Builder{URI: "ssh://nbs-builder?remote-store=daemon"}
	printed := "ssh://nbs-builder?remote-program=nix-store%20--option%20keep-failed%20true&remote-store=daemon"
	if !b.SameBuilder(printed) {
		t.Errorf("%s is not recognised as %s", printed, b.URI)
	}
	if b.SameBuilder("ssh://other?remote-store=daemon") || b.SameBuilder("ssh://nbs-builder?remote-store=local") {
		t.Error("a different builder is taken for this one")
	}
}
