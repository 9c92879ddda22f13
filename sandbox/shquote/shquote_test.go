package shquote

import (
	"bytes"
	"os/exec"
	"strings"
	"testing"
)

// shells are the shells the quoted words are read back by: sh (dash on
// Debian) runs the remote scripts, bash the sandbox's start-up file.
func shells(t testing.TB) []string {
	var out []string
	for _, name := range []string{"sh", "bash-static", "bash"} {
		if p, err := exec.LookPath(name); err == nil {
			out = append(out, p)
		}
	}
	if len(out) == 0 {
		t.Skip("SKIPPED: no sh or bash on PATH to read the words back")
	}
	return out
}

// readBack runs `printf '%s\0' WORD…` with the quoted words pasted into
// the script and returns what the shell made of them.
func readBack(t testing.TB, shell string, words ...string) []string {
	t.Helper()
	cmd := exec.Command(shell, "-c", `printf '%s\0' `+strings.Join(words, " "))
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "LC_ALL=C"}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s -c %q: %v: %s", shell, words, err, stderr.String())
	}
	return strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
}

var seeds = []string{
	"", "a", "/tmp/nix-build-hello.drv-0", "it's", "'", "''", `\`, `"$HOME"`, "$(id)", "`id`",
	"a b", "tab\there", "new\nline", "*", "?", "[a]", "~", "~root", "#x", "a#b", "-n", "--", "-e",
	"!", "!!", "{a,b}", "a=b", "=ls", "%1", "ssh://h?remote-program=nix-daemon%20--option", "ümlaut", "\xff\xfe",
}

func TestQuote(t *testing.T) {
	for _, sh := range shells(t) {
		for _, s := range seeds {
			got := readBack(t, sh, Quote(s), Paste(s))
			if len(got) != 2 || got[0] != s || got[1] != s {
				t.Errorf("%s: %q quoted as %s and %s reads back as %q", sh, s, Quote(s), Paste(s), got)
			}
		}
	}
}

func TestPasteBare(t *testing.T) {
	for _, s := range []string{"/tmp/nix-build-hello.drv-0", "ssh://nix-docker", "--option=x", "user@host:22"} {
		if Paste(s) != s {
			t.Errorf("Paste(%q) = %s, want it bare", s, Paste(s))
		}
	}
	for _, s := range []string{"", "a b", "=ls", "~", "$x"} {
		if Paste(s) == s {
			t.Errorf("Paste(%q) left it bare", s)
		}
	}
}

// FuzzQuote: any string without NUL, quoted either way and pasted into a
// shell script, is read back by sh and bash as itself.
func FuzzQuote(f *testing.F) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if strings.IndexByte(s, 0) >= 0 {
			t.Skip("a NUL byte cannot be in a shell word")
		}
		for _, sh := range shells(t) {
			got := readBack(t, sh, Quote(s), Paste(s))
			if len(got) != 2 || got[0] != s || got[1] != s {
				t.Fatalf("%s: %q quoted as %s and %s reads back as %q", sh, s, Quote(s), Paste(s), got)
			}
		}
	})
}
