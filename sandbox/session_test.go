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
		failedPhase: "buildPhase",
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
		dir + "/src/sub\n2\n" +
		`[nbs hello-1.0] \w \$ ` + "\n"
	if out != want {
		t.Errorf("after the rc:\n%s\nwant:\n%s", out, want)
	}
	wantHint := "nbs: stdenv is loaded, with the environment the failed phase began with\n" +
		"nbs: the build failed in buildPhase; its phases: unpackPhase patchPhase configurePhase buildPhase checkPhase installPhase fixupPhase installCheckPhase distPhase\n" +
		"nbs:   runPhase buildPhase    runs that phase again as the builder did (bash -e; nothing after it runs)\n" +
		"nbs:   resumeBuild            runs buildPhase and every phase after it, from where it began\n" +
		"nbs:   genericBuild           runs the whole build again from " + dir + "\n"
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

// TestStdenvSetup: the stdenv comes from env-vars or, for a
// structured-attrs build, from .attrs.json; a setup that is not on this
// machine does not count.
func TestStdenvSetup(t *testing.T) {
	ev, _ := nix.ParseEnvVars(strings.NewReader("declare -x stdenv=\"/nix/store/00000000000000000000000000000000-nope\"\n"))
	if _, ok := stdenvSetup(buildVars{ev: ev}); ok {
		t.Error("a stdenv without setup on this machine counts")
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "env-vars"), []byte("declare -x out=\"/nix/store/11111111111111111111111111111111-x\"\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".attrs.json"), []byte(`{"name":"x-1","stdenv":"/nix/store/00000000000000000000000000000000-std","outputs":{"out":"/nix/store/11111111111111111111111111111111-x"},"src":["/nix/store/22222222222222222222222222222222-src"]}`), 0o644)
	ev, err := nix.ReadEnvVars(filepath.Join(dir, "env-vars"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := readBuildVars(dir, ev)
	if err != nil {
		t.Fatal(err)
	}
	if s, _ := v.get("stdenv"); s != "/nix/store/00000000000000000000000000000000-std" {
		t.Errorf("stdenv %q", s)
	}
	if n := promptName("", v); n != "x-1" {
		t.Errorf("prompt name %q", n)
	}
	if o := v.outputs(); len(o) != 1 || o[0] != "/nix/store/11111111111111111111111111111111-x" {
		t.Errorf("outputs %q", o)
	}
	if !strings.Contains(strings.Join(v.values(), " "), "22222222222222222222222222222222-src") {
		t.Errorf("values lack src: %q", v.values())
	}
	os.WriteFile(filepath.Join(dir, ".attrs.json"), []byte("[1]"), 0o644)
	if _, err := readBuildVars(dir, ev); err == nil {
		t.Error("a .attrs.json that is no object is accepted")
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

// A setup with nixpkgs' runPhase/genericBuild shapes (the phase's own
// code is eval'ed in the caller's shell state) and a dumpVars that
// would overwrite env-vars.
const phasesSetup = `set -eu
set -o pipefail
trap 'echo exit-trap-ran' EXIT
dumpVars() { if [ "${noDumpEnvVars:-0}" != 1 ]; then echo dumped > "$NIX_BUILD_TOP/env-vars"; fi; }
runPhase() { local curPhase="$*"; echo "Running phase: $curPhase"; dumpVars; eval "${!curPhase:-$curPhase}"; }
genericBuild() { for curPhase in ${phases[*]}; do runPhase "$curPhase"; done; }
configurePhase() { echo "configure in $PWD"; }
buildPhase() { echo "build in $PWD"; false; echo "after-false"; }
installPhase() { echo "install ran"; }
dumpVars
set +u
`

// TestStdenvCommands: runPhase, resumeBuild and genericBuild behave as
// in the builder (errexit inside, the failing status, no later phase),
// from the right directories, and sourcing setup leaves env-vars and
// the EXIT trap alone.
func TestStdenvCommands(t *testing.T) {
	c, dir := fakeBuild(t, phasesSetup)
	env := filepath.Join(dir, "env-vars")
	b, _ := os.ReadFile(env)
	os.WriteFile(env, append(b, []byte("declare -x NIX_BUILD_TOP=\""+dir+"\"\ndeclare -x phases=\"configurePhase buildPhase installPhase\"\n")...), 0o644)
	out, stderr := rcRun(t, c, `runPhase buildPhase; echo "status=$?"; resumeBuild; echo "resume=$?"; genericBuild; echo "generic=$?"; pwd; grep -c declare "$NIX_BUILD_TOP/env-vars"`)
	want := "Running phase: buildPhase\nbuild in " + dir + "/src/sub\nstatus=1\n" +
		"Running phase: buildPhase\nbuild in " + dir + "/src/sub\nresume=1\n" +
		"Running phase: configurePhase\nconfigure in " + dir + "\nRunning phase: buildPhase\nbuild in " + dir + "\ngeneric=1\n" +
		dir + "/src/sub\n6\n"
	if out != want {
		t.Errorf("stdout:\n%s\nwant:\n%s\nstderr: %s", out, want, stderr)
	}
	if strings.Contains(out+stderr, "exit-trap-ran") || strings.Contains(out, "after-false") || strings.Contains(out, "install ran") {
		t.Errorf("something ran that should not:\n%s%s", out, stderr)
	}
}

// TestCommandForms: a command runs from the build directory with PWD
// saying so; a script gets the interactive shell's environment.
func TestCommandForms(t *testing.T) {
	c := rcConfig{shell: "/bin/bash", load: "source /build/env-vars", buildDir: "/build", stdenvSetup: "/nix/store/x-stdenv/setup"}
	argv := command(c, []string{"make", "-j1"})
	if len(argv) != 6 || !strings.HasSuffix(argv[2], `PWD='/build'; exec "$@"`) || argv[4] != "make" || strings.Contains(argv[2], "setup") {
		t.Errorf("command argv %q", argv)
	}
	argv = script(c, "runPhase buildPhase")
	if len(argv) != 3 || !strings.Contains(argv[2], "noDumpEnvVars=1") || !strings.HasSuffix(argv[2], "runPhase buildPhase") || strings.Contains(argv[2], "__nbsHint\n") {
		t.Errorf("script argv %q", argv)
	}
}
