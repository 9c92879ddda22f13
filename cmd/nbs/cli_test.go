package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	"github.com/spf13/cobra"
)

// cliRun runs the CLI in this process with files for stdout and stderr
// (the Factory wants *os.File, as nbs hands them to the sandbox).
func cliRun(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	dir := t.TempDir()
	out, _ := os.Create(filepath.Join(dir, "stdout"))
	errf, _ := os.Create(filepath.Join(dir, "stderr"))
	defer out.Close()
	defer errf.Close()
	in, _ := os.Open(os.DevNull)
	defer in.Close()
	code = run(args, in, out, errf)
	o, _ := os.ReadFile(out.Name())
	e, _ := os.ReadFile(errf.Name())
	return string(o), string(e), code
}

// TestHelpExamples: every command a user runs has a description and
// examples in its --help.
func TestHelpExamples(t *testing.T) {
	root := newRootCmd(&Factory{Stdout: os.Stdout, Stderr: os.Stderr})
	cmds := append([]*cobra.Command{root}, manCommands(root)...)
	if len(cmds) < 7 {
		t.Fatalf("only %d commands", len(cmds))
	}
	for _, c := range cmds {
		if c.Long == "" || c.Example == "" {
			t.Errorf("%s: Long %d bytes, Example %d bytes; --help needs both", c.CommandPath(), len(c.Long), len(c.Example))
		}
		for _, l := range strings.Split(c.Example, "\n") {
			if strings.TrimSpace(l) != "" && !strings.HasPrefix(strings.TrimSpace(l), "#") && !strings.Contains(l, "nbs ") {
				t.Errorf("%s: example line %q does not run nbs", c.CommandPath(), l)
			}
		}
	}
	for _, name := range []string{"shell", "build", "list", "diff", "completion", "man"} {
		stdout, _, code := cliRun(t, name, "--help")
		if code != 0 || !strings.Contains(stdout, "Examples:") {
			t.Errorf("nbs %s --help: status %d, no examples:\n%s", name, code, stdout)
		}
	}
}

func TestCompletion(t *testing.T) {
	for shell, want := range map[string]string{
		"bash": "complete -o default -F __start_nbs nbs",
		"zsh":  "#compdef nbs",
		"fish": "complete -c nbs",
	} {
		stdout, stderr, code := cliRun(t, "completion", shell)
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("nbs completion %s: status %d, %q not in the script; stderr %s", shell, code, want, stderr)
		}
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		stdout, _, _ := cliRun(t, "completion", "bash")
		cmd := exec.Command(bash, "-n")
		cmd.Stdin = strings.NewReader(stdout)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("bash -n on the bash completion: %v\n%s", err, out)
		}
	}
	for _, args := range [][]string{{"completion"}, {"completion", "tcsh"}} {
		if _, stderr, code := cliRun(t, args...); code != 2 {
			t.Errorf("nbs %q: status %d, want 2 (usage); %s", args, code, stderr)
		}
	}
	// The commands are completed (cobra's __complete, which the scripts
	// call), and no second 'completion' command of cobra's is listed.
	stdout, _, _ := cliRun(t, "__complete", "")
	for _, c := range []string{"shell", "build", "list", "diff", "completion", "man"} {
		if !strings.Contains(stdout, c+"\t") {
			t.Errorf("__complete does not offer %s:\n%s", c, stdout)
		}
	}
}

func TestMan(t *testing.T) {
	stdout, stderr, code := cliRun(t, "man")
	if code != 0 {
		t.Fatalf("nbs man: status %d: %s", code, stderr)
	}
	for _, want := range []string{".TH NBS 1", ".SH NAME", ".SH SYNOPSIS", ".SH COMMANDS", `.SS "nbs shell`, `.SS "nbs diff`, `\-\-with`, ".SH ENVIRONMENT", "NO_COLOR", ".SH EXIT STATUS"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	for i, l := range strings.Split(stdout, "\n") {
		if strings.HasPrefix(l, "'") || (strings.HasPrefix(l, ".") && !strings.HasPrefix(l, ".TH") && len(l) > 1 && !isRoffRequest(l)) {
			t.Errorf("line %d starts like an unknown roff request: %q", i+1, l)
		}
	}
	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Skip("SKIPPED: groff not installed, the page is not rendered")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z")
	cmd.Stdin = strings.NewReader(stdout)
	var warn bytes.Buffer
	cmd.Stderr = &warn
	if err := cmd.Run(); err != nil || warn.Len() > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, warn.String())
	}
	cmd = exec.Command(groff, "-man", "-Tutf8")
	cmd.Stdin = strings.NewReader(stdout)
	page, err := cmd.Output()
	if err != nil || !strings.Contains(string(page), "nbs shell --last") {
		t.Errorf("rendered page lacks the examples (%v)", err)
	}
}

func isRoffRequest(l string) bool {
	for _, r := range []string{".SH ", ".SS ", ".PP", ".TP", ".B ", ".BR ", ".br", ".nf", ".fi", ".RS", ".RE"} {
		if strings.HasPrefix(l, r) {
			return true
		}
	}
	return false
}

func TestShellArgs(t *testing.T) {
	cases := []struct {
		args      []string
		dir       string
		command   []string
		last      bool
		with      []string
		usageFail bool
	}{
		{args: []string{"/k"}, dir: "/k"},
		{args: []string{"/k", "make", "-j1"}, dir: "/k", command: []string{"make", "-j1"}},
		{args: []string{"--last"}, last: true},
		{args: []string{"--last", "make", "-k"}, last: true, command: []string{"make", "-k"}},
		{args: []string{"--with", "/nix/store/a", "--with=gdb", "/k", "gdb"}, dir: "/k", with: []string{"/nix/store/a", "gdb"}, command: []string{"gdb"}},
		{args: []string{}, usageFail: true},
	}
	for _, c := range cases {
		var got *ShellOptions
		f := &Factory{Stdout: os.Stdout, Stderr: os.Stderr}
		cmd := newCmdShell(f, func(o *ShellOptions) error { got = o; return nil })
		cmd.SetArgs(c.args)
		cmd.SilenceErrors, cmd.SilenceUsage = true, true
		err := cmd.Execute()
		var ue *usageError
		if c.usageFail {
			if !errors.As(err, &ue) {
				t.Errorf("%q: %v, want a usage error", c.args, err)
			}
			continue
		}
		if err != nil || got == nil {
			t.Errorf("%q: %v", c.args, err)
			continue
		}
		if got.Dir != c.dir || got.Last != c.last || strings.Join(got.Command, " ") != strings.Join(c.command, " ") || strings.Join(got.With, " ") != strings.Join(c.with, " ") {
			t.Errorf("%q: dir %q last %v command %q with %q", c.args, got.Dir, got.Last, got.Command, got.With)
		}
	}
}

func TestResolveWith(t *testing.T) {
	storeDir := nix.StoreDir
	link := filepath.Join(t.TempDir(), "result")
	target := ""
	// A real store path for ./result, when this machine has a store.
	if entries, err := os.ReadDir(storeDir); err == nil {
		for _, e := range entries {
			if e.IsDir() && nix.IsStorePath(storeDir+"/"+e.Name()) {
				target = storeDir + "/" + e.Name()
				break
			}
		}
	}
	var built []string
	build := func(_ context.Context, attr string) ([]string, error) {
		built = append(built, attr)
		if attr == "missing" {
			return nil, errNoNixpkgs
		}
		return []string{storeDir + "/00000000000000000000000000000000-" + attr}, nil
	}
	got, err := resolveWith(context.Background(), []string{"gdb", "strace"}, build)
	if err != nil || len(got) != 2 || !strings.HasSuffix(got[0], "-gdb") || strings.Join(built, " ") != "gdb strace" {
		t.Errorf("attributes: %q, %v (built %q)", got, err, built)
	}
	if _, err := resolveWith(context.Background(), []string{"missing"}, build); !errors.Is(err, errNoNixpkgs) || withHint(err) == "" {
		t.Errorf("no <nixpkgs>: %v; want errNoNixpkgs with a hint", err)
	}
	if _, err := resolveWith(context.Background(), []string{"/etc/passwd"}, build); err == nil || !strings.Contains(err.Error(), "not in /nix/store") {
		t.Errorf("a host path: %v", err)
	}
	if _, err := resolveWith(context.Background(), []string{"./no-such-result"}, build); err == nil {
		t.Error("a missing path is accepted")
	}
	if target != "" {
		os.Symlink(target, link)
		got, err := resolveWith(context.Background(), []string{link}, build)
		if err != nil || len(got) != 1 || got[0] != target {
			t.Errorf("./result: %q, %v; want %s", got, err, target)
		}
	}
}

// TestResolveWithOffline: without <nixpkgs>, an attribute fails with one
// line that says what to do.
func TestResolveWithOffline(t *testing.T) {
	if _, err := exec.LookPath("nix-instantiate"); err != nil {
		t.Skip("SKIPPED: nix-instantiate not installed")
	}
	t.Setenv("NIX_PATH", "nixpkgs=/nonexistent/nixpkgs")
	_, err := prepareShell(context.Background(), &ShellOptions{f: &Factory{Stderr: os.Stderr}, With: []string{"gdb"}}, nix.KeptSearch{}, nixpkgsBuild)
	var he *hintError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "--with gdb") || !strings.Contains(he.hint, "store path") {
		t.Errorf("err %v; want '--with gdb: …' with a hint to pass a store path", err)
	}
}

func TestList(t *testing.T) {
	root := t.TempDir()
	tmp := filepath.Join(root, "tmp")
	now := time.Date(2025, 1, 2, 15, 0, 0, 0, time.UTC)
	for name, age := range map[string]time.Duration{"hello": 3 * time.Hour, "wttr": 5 * time.Minute} {
		d := filepath.Join(tmp, "nix-build-"+name+".drv-0")
		os.MkdirAll(d, 0o755)
		p := filepath.Join(d, "env-vars")
		os.WriteFile(p, []byte("declare -x name=\""+name+"\"\n"), 0o644)
		os.Chtimes(p, now.Add(-age), now.Add(-age))
	}
	dir, _ := os.MkdirTemp(t.TempDir(), "out")
	stdout, _ := os.Create(filepath.Join(dir, "out"))
	stderr, _ := os.Create(filepath.Join(dir, "err"))
	opts := &ListOptions{
		f:      &Factory{Stdout: stdout, Stderr: stderr},
		Search: nix.KeptSearch{TmpDirs: []string{tmp}},
		Now:    func() time.Time { return now },
	}
	if err := listRun(opts); err != nil {
		t.Fatal(err)
	}
	out, _ := os.ReadFile(stdout.Name())
	want := "AGE  SIZE  NAME   DIRECTORY\n" +
		"5m   23 B  wttr   " + tmp + "/nix-build-wttr.drv-0\n" +
		"3h   24 B  hello  " + tmp + "/nix-build-hello.drv-0\n"
	if string(out) != want {
		t.Errorf("nbs list:\n%s\nwant:\n%s", out, want)
	}
	k, err := lastKept(opts.Search)
	if err != nil || k.Name != "wttr" {
		t.Errorf("lastKept = %+v, %v; want wttr", k, err)
	}
	if _, err := lastKept(nix.KeptSearch{TmpDirs: []string{root}}); err == nil {
		t.Error("lastKept found something where nothing is kept")
	}
}

func TestColorer(t *testing.T) {
	in := "--- a/x\n+++ b/x\n@@ -1,2 +1,2 @@\n keep\n--- gone\n+++ new\nOnly in the copy: y/\n"
	var c colorer
	var out strings.Builder
	for _, l := range strings.SplitAfter(in, "\n") {
		out.WriteString(c.line(l))
	}
	want := "\x1b[1m--- a/x\x1b[0m\n\x1b[1m+++ b/x\x1b[0m\n\x1b[36m@@ -1,2 +1,2 @@\x1b[0m\n keep\n\x1b[31m--- gone\x1b[0m\n\x1b[32m+++ new\x1b[0m\n\x1b[1mOnly in the copy: y/\x1b[0m\n"
	if out.String() != want {
		t.Errorf("colored:\n%q\nwant\n%q", out.String(), want)
	}
}

func TestProgressLine(t *testing.T) {
	p := sandbox.CopyProgress{Files: 2000, Bytes: 512 << 20, TotalFiles: 4000, TotalBytes: 1 << 30}
	got := progressLine(p, 2*time.Second, 120)
	want := "copying /build  [###############...............]   50%  512 MiB/1.0 GiB  2000/4000 files  256 MiB/s  ETA 2s"
	if got != want {
		t.Errorf("progress line\n%q\nwant\n%q", got, want)
	}
	if narrow := progressLine(p, 2*time.Second, 40); len(narrow) > 39 {
		t.Errorf("line for 40 columns is %d long: %q", len(narrow), narrow)
	}
}

// TestProgressDelay: nothing is drawn during the first half second;
// after it a line is drawn and redrawn with \r, and the end clears it.
func TestProgressDelay(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	p := &copyProgress{w: &buf, width: func() int { return 100 }, start: now, now: func() time.Time { return now }, delay: progressDelay}
	step := sandbox.CopyProgress{Files: 1, Bytes: 10, TotalFiles: 10, TotalBytes: 100}
	now = now.Add(400 * time.Millisecond)
	p.update(step)
	if buf.Len() != 0 {
		t.Fatalf("drawn before the delay: %q", buf.String())
	}
	now = now.Add(200 * time.Millisecond)
	p.update(step)
	step.Files, step.Bytes = 5, 50
	p.update(step)
	s := buf.String()
	if strings.Count(s, "\r") != 2 || !strings.Contains(s, "5/10 files") {
		t.Errorf("drawn %q", s)
	}
	buf.Reset()
	p.update(sandbox.CopyProgress{Done: true})
	if s := buf.String(); !strings.HasPrefix(s, "\r ") || !strings.HasSuffix(s, "\r") || strings.TrimSpace(s) != "" {
		t.Errorf("end %q; want the line blanked", s)
	}

	// A quick copy draws nothing, not even at its end.
	buf.Reset()
	q := &copyProgress{w: &buf, width: func() int { return 100 }, start: now, now: func() time.Time { return now }, delay: progressDelay}
	q.update(step)
	q.update(sandbox.CopyProgress{Done: true})
	if buf.Len() != 0 {
		t.Errorf("a quick copy drew %q", buf.String())
	}
}

func TestHumanBytes(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 10 << 20: "10 MiB", 3 << 30: "3.0 GiB"} {
		if got := humanBytes(n); got != want {
			t.Errorf("humanBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestBuildHelpShort: nbs build --help says what a user needs; the
// details (the rewritten remote-program URIs, how nix build is chosen)
// are in the manual page, which --help points to.
func TestBuildHelpShort(t *testing.T) {
	help, _, _ := cliRun(t, "build", "--help")
	long, _, _ := strings.Cut(help, "\nUsage:")
	if n := strings.Count(long, "\n"); n > 20 || strings.Contains(long, "remote-program") || !strings.Contains(long, "nbs man") {
		t.Errorf("nbs build --help: %d lines before Usage, or rewritten URIs, or no pointer to nbs man:\n%s", n, long)
	}
	man, _, _ := cliRun(t, "man")
	for _, want := range []string{"remote\\-program=nix\\-daemon", "\\-\\-extra\\-experimental\\-features", "several failures"} {
		if !strings.Contains(man, want) {
			t.Errorf("man page lacks %q", want)
		}
	}
	if strings.Contains(man, "man \\-l") && strings.Contains(man, "How nix build is chosen") {
		t.Error("man page points to itself")
	}
}

func TestParseAge(t *testing.T) {
	for in, want := range map[string]time.Duration{"90m": 90 * time.Minute, "12h": 12 * time.Hour, "7d": 7 * 24 * time.Hour, "2w": 14 * 24 * time.Hour, "1.5d": 36 * time.Hour, "0s": 0} {
		if got, err := parseAge(in); err != nil || got != want {
			t.Errorf("parseAge(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "7", "d", "-1d", "-5m", "7days", "1y"} {
		if _, err := parseAge(bad); err == nil {
			t.Errorf("parseAge(%q) succeeded", bad)
		}
	}
	if _, stderr, code := cliRun(t, "gc", "--older-than", "soon"); code != 2 || !strings.Contains(stderr, "--older-than") {
		t.Errorf("gc --older-than soon: status %d, %s", code, stderr)
	}
	if _, stderr, code := cliRun(t, "gc", "--keep", "-1"); code != 2 || !strings.Contains(stderr, "--keep") {
		t.Errorf("gc --keep -1: status %d, %s", code, stderr)
	}
}

func TestOriginalRan(t *testing.T) {
	for d, want := range map[time.Duration]string{
		300 * time.Millisecond:           "the original ran under a second",
		time.Second:                      "the original ran 1s",
		4*time.Minute + 12*time.Second:   "the original ran 4m12s",
		2*time.Hour + 5*time.Minute + 59: "the original ran 2h05m",
		72 * time.Hour:                   "the original ran 3d",
	} {
		if got := originalRan(d); got != want {
			t.Errorf("originalRan(%v) = %q, want %q", d, got, want)
		}
	}
}

// TestUnreadableHint: the sudo and replay commands of the hint keep what
// the user asked, --no-sandbox included (nbs shell takes a build's
// sandbox setting from Nix or the user, not from what it kept).
func TestUnreadableHint(t *testing.T) {
	dir := "/tmp/nix-build-x.drv-0"
	h := unreadableHint("make", dir, "", nil, true)
	for _, want := range []string{"sudo nbs shell --no-sandbox --run make " + dir, "nbs replay --no-sandbox --run make " + dir} {
		if !strings.Contains(h, want) {
			t.Errorf("hint %q lacks %q", h, want)
		}
	}
	if h := unreadableHint("", dir, "", []string{"ls", "-l"}, false); !strings.Contains(h, "sudo nbs shell "+dir+" ls -l") || strings.Contains(h, "--no-sandbox") {
		t.Errorf("hint %q", h)
	}
}
