//go:build linux

package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/shquote"
)

// rcRun runs the interactive shell's start-up file with the host's bash,
// outside any sandbox, then script, and returns what it printed.
func rcRun(t *testing.T, c rcConfig, script string) (string, string) {
	t.Helper()
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("SKIPPED: bash not installed")
	}
	c.shell = bash
	argv, rc := interactiveShell(c)
	if len(argv) != 4 || argv[1] != "--rcfile" || argv[2] != "/dev/fd/3" || argv[3] != "-i" {
		t.Fatalf("argv %q", argv)
	}
	dir := t.TempDir()
	rcFile := filepath.Join(dir, "rc")
	os.WriteFile(rcFile, []byte(rc), 0o644)
	cmd := exec.Command(bash, "--norc", "-c", `source "$1" 3</dev/null; `+script, "bash", rcFile)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin"}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("rc: %v\nstderr: %s\nrc:\n%s", err, stderr.String(), rc)
	}
	return string(out), stderr.String()
}

// fakeBuild writes an env-vars and a stdenv-like setup into dir.
func fakeBuild(t *testing.T, setup string) (rcConfig, string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "src", "sub"), 0o755)
	setupPath := filepath.Join(dir, "setup")
	os.WriteFile(setupPath, []byte(setup), 0o644)
	env := "declare -x PATH=\"/usr/bin:/bin\"\n" +
		"declare -x out=\"/nix/store/00000000000000000000000000000000-x\"\n" +
		"declare -x PWD=\"" + dir + "/src/sub\"\n" +
		"declare -x NIX_LOG_FD=\"2\"\n"
	os.WriteFile(filepath.Join(dir, "env-vars"), []byte(env), 0o644)
	return rcConfig{
		load:        "source " + shquote.Quote(filepath.Join(dir, "env-vars")),
		buildDir:    dir,
		name:        "hello-1.0",
		stdenvSetup: setupPath,
		phases:      defaultPhases,
	}, dir
}

const fakeSetup = `set -eu
set -o pipefail
shopt -s nullglob
PATH=
out=/clobbered
genericBuild() { echo generic; }
`

func TestInteractiveShellStdenv(t *testing.T) {
	c, dir := fakeBuild(t, fakeSetup)
	c.tools = toolsPATHFor([]string{"/nix/store/11111111111111111111111111111111-gdb/bin"})
	out, stderr := rcRun(t, c, `type -t genericBuild; echo "$out"; echo "$PATH"; echo "$PWD"; echo "${NIX_LOG_FD-unset}"; shopt -q nullglob && echo nullglob; false; echo "$-" | grep -q e && echo errexit; echo "$PS1"`)
	want := "function\n/nix/store/00000000000000000000000000000000-x\n" +
		"/nix/store/11111111111111111111111111111111-gdb/bin:/usr/bin:/bin\n" +
		dir + "/src/sub\nunset\n" +
		`[nbs hello-1.0] \w \$ ` + "\n"
	if out != want {
		t.Errorf("after the rc:\n%s\nwant:\n%s", out, want)
	}
	wantHint := "nbs: stdenv is loaded: genericBuild runs every phase, runPhase NAME one of them (runPhase buildPhase)\n" +
		"nbs: phases: unpackPhase patchPhase configurePhase buildPhase checkPhase installPhase fixupPhase installCheckPhase distPhase\n"
	if stderr != wantHint {
		t.Errorf("hint %q, want %q", stderr, wantHint)
	}
}

// TestInteractiveShellBadSetup: a setup that fails (here under its own
// errexit) does not end the shell; it says so and goes on without it.
func TestInteractiveShellBadSetup(t *testing.T) {
	c, dir := fakeBuild(t, "set -eu\nfalse\ngenericBuild() { :; }\n")
	out, stderr := rcRun(t, c, `type -t genericBuild || echo none; echo "$PWD"`)
	if out != "none\n"+dir+"/src/sub\n" || !strings.Contains(stderr, "nbs: warning: sourcing "+c.stdenvSetup+" fails") {
		t.Errorf("stdout %q, stderr %q", out, stderr)
	}
}

// TestInteractiveShellPlain: no stdenv, no hint; a PWD that is gone
// falls back to the build directory; colors unless NO_COLOR.
func TestInteractiveShellPlain(t *testing.T) {
	c, dir := fakeBuild(t, "")
	c.stdenvSetup = ""
	os.RemoveAll(filepath.Join(dir, "src"))
	c.color = true
	out, stderr := rcRun(t, c, `echo "$PWD"; echo "$PS1"`)
	if out != dir+"\n"+`\[\e[1;32m\][nbs hello-1.0]\[\e[0m\] \w \$ `+"\n" || stderr != "" {
		t.Errorf("stdout %q, stderr %q", out, stderr)
	}
}

func toolsPATHFor(bins []string) string {
	return "export PATH=" + shquote.Quote(strings.Join(bins, ":")) + `"${PATH:+:$PATH}"`
}

func TestStdenvPhases(t *testing.T) {
	ev, err := nix.ParseEnvVars(strings.NewReader("declare -x phases=\"  buildPhase   installPhase \"\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(stdenvPhases(ev), " "); got != "buildPhase installPhase" {
		t.Errorf("phases %q", got)
	}
	ev, _ = nix.ParseEnvVars(strings.NewReader("declare -x stdenv=\"/nix/store/00000000000000000000000000000000-nope\"\n"))
	if _, ok := stdenvSetup(ev); ok {
		t.Error("a stdenv without setup on this machine counts")
	}
	if got := stdenvPhases(ev); len(got) != len(defaultPhases) {
		t.Errorf("default phases %q", got)
	}
}

func TestToolPaths(t *testing.T) {
	var store string
	entries, _ := os.ReadDir(nix.StoreDir)
	for _, e := range entries {
		if p := nix.StoreDir + "/" + e.Name(); e.IsDir() && nix.IsStorePath(p) {
			store = p
			break
		}
	}
	if store == "" {
		t.Skip("SKIPPED: no store path on this machine")
	}
	got, err := toolPaths([]string{store, store + "/bin/x", store + "/"})
	if err != nil || len(got) != 1 || got[0] != store {
		t.Errorf("toolPaths = %q, %v; want [%s]", got, err, store)
	}
	for _, bad := range []string{"/usr/bin/gdb", "relative", nix.StoreDir, nix.StoreDir + "/00000000000000000000000000000000-gone"} {
		if _, err := toolPaths([]string{bad}); err == nil {
			t.Errorf("toolPaths(%q) accepted", bad)
		}
	}
	if s := toolsPATH([]string{nix.StoreDir + "/00000000000000000000000000000000-gone"}); s != "" {
		t.Errorf("PATH code for a path without bin/: %q", s)
	}
}

// TestKeptCopies: a copy kept with --keep is listed with its origin, and
// no later nbs takes it for an abandoned work directory.
func TestKeptCopies(t *testing.T) {
	base := t.TempDir()
	old := time.Now().Add(-time.Hour)
	kept := filepath.Join(base, "nbs-kept1")
	os.MkdirAll(filepath.Join(kept, "build"), 0o755)
	os.WriteFile(filepath.Join(kept, ".lock"), nil, 0o600)
	if err := writeOrigin(kept, "/tmp/nix-build-x.drv-0", nil); err != nil {
		t.Fatal(err)
	}
	os.Chtimes(kept, old, old)
	stale := filepath.Join(base, "nbs-stale1")
	os.MkdirAll(filepath.Join(stale, "build"), 0o755)
	os.Chtimes(stale, old, old)

	removed, err := cleanStale(base)
	if err != nil || len(removed) != 1 || removed[0] != stale {
		t.Errorf("cleanStale removed %q, %v; want only %s", removed, err, stale)
	}
	copies := KeptCopies([]string{base, base + "/."})
	if len(copies) != 1 || copies[0].Origin != "/tmp/nix-build-x.drv-0" || copies[0].Dir != CanonicalDir(kept)+"/build" {
		t.Errorf("KeptCopies = %+v", copies)
	}
	for _, p := range []string{kept, filepath.Join(kept, "build")} {
		if k, err := ReadKeptCopy(p); err != nil || k.Origin != "/tmp/nix-build-x.drv-0" {
			t.Errorf("ReadKeptCopy(%s) = %+v, %v", p, k, err)
		}
	}
	if _, err := ReadKeptCopy(base); err == nil {
		t.Error("ReadKeptCopy accepts a directory that is no kept copy")
	}
}
