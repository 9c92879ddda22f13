//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// End-to-end tests of the debugging session (issue 6): where the shell
// lands, stdenv's functions, --with, the change summary, --keep and nbs
// diff, nbs list and --last, and the copy's progress bar.

// builtPath builds attr of testdata/e2e, which must succeed, and returns
// its store path.
func builtPath(t *testing.T, attr string) string {
	t.Helper()
	requireNix(t)
	out, err := exec.Command("nix-build", "--no-out-link", e2eNix(t), "-A", attr).Output()
	if err != nil {
		t.Fatalf("nix-build -A %s: %v", attr, err)
	}
	return strings.TrimSpace(string(out))
}

// nbsIn runs nbs with TMPDIR=tmp, so that runs share kept copies.
func nbsIn(t *testing.T, tmp string, extraEnv []string, args ...string) result {
	t.Helper()
	cmd := exec.Command(nbsBin, args...)
	cmd.Env = append(append([]string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=/nonexistent"}, entryEnv()...), extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run nbs: %v", err)
	}
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code, tmp: tmp}
}

func privateTmp(t *testing.T) string {
	t.Helper()
	tmp, err := os.MkdirTemp("", "nbs-e2e-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(tmp, 0o1777)
	t.Cleanup(func() { os.RemoveAll(tmp) })
	return tmp
}

// onTerm starts nbs with the terminal tm as its stdin, stdout and stderr
// and returns a channel that gets its exit status.
func onTerm(t *testing.T, tm *term, env []string, args ...string) (*exec.Cmd, <-chan int) {
	t.Helper()
	return onTermAs(t, tm, nil, env, args...)
}

func exitWithin(t *testing.T, done <-chan int, want int) {
	t.Helper()
	select {
	case code := <-done:
		if code != want {
			t.Errorf("nbs exited %d, want %d", code, want)
		}
	case <-time.After(hang):
		t.Fatal("nbs did not exit")
	}
}

// TestShellNoStdenv: a builder without stdenv gets env-vars only: no
// stdenv functions, no hint.
func TestShellNoStdenv(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	tm := newTerm(t)
	_, done := onTerm(t, tm, []string{"TMPDIR=" + privateTmp(t)}, "shell", dir)
	tm.expect(t, "[nbs nbs-e2e-fail] /build/src $ ")
	tm.send("type genericBuild >/dev/null 2>&1 || echo no-generic-build\r")
	tm.expect(t, "no-generic-build")
	tm.send("exit\r")
	exitWithin(t, done, 0)
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if strings.Contains(tm.out.String(), "stdenv is loaded") {
		t.Error("stdenv hint without a stdenv")
	}
}

// TestShellWith: --with adds a store path with its closure and puts its
// bin/ first in PATH, in commands and in the interactive shell; a path
// below a store path or a symlink to one (./result) works too; nixpkgs
// attributes need <nixpkgs>.
func TestShellWith(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	extra := builtPath(t, "extraTool")
	tools := builtPath(t, "tools")
	result := filepath.Join(t.TempDir(), "result")
	os.Symlink(extra, result)
	os.Chmod(filepath.Dir(result), 0o755)

	res := runNBS(t, nil, nil, "shell", dir, "nbs-extra-tool")
	if res.code != 127 {
		t.Fatalf("without --with the tool is found (status %d, %q): the test proves nothing", res.code, res.stdout)
	}
	for _, with := range []string{extra, extra + "/bin/nbs-extra-tool", result} {
		res := runNBS(t, nil, nil, "shell", "--with", with, dir, "sh", "-c", `nbs-extra-tool; echo ${PATH%%:*}; ls /nix/store | grep -c nbs-test-extra-tool`)
		want := "extra tool here\n" + extra + "/bin\n1\n"
		if res.code != 0 || res.stdout != want {
			t.Errorf("--with %s: status %d, stdout %q, want %q; stderr %s", with, res.code, res.stdout, want, res.stderr)
		}
		assertCleanTmp(t, res)
	}
	// Several, in order; the build's own PATH stays after them.
	res = runNBS(t, nil, nil, "shell", "--with", tools, "--with", extra, dir, "sh", "-c", `echo $PATH`)
	if want := tools + "/bin:" + extra + "/bin:" + tools + "/bin\n"; res.stdout != want {
		t.Errorf("PATH %q, want %q", res.stdout, want)
	}

	tm := newTerm(t)
	_, done := onTerm(t, tm, []string{"TMPDIR=" + privateTmp(t)}, "shell", "--with", extra, dir)
	tm.expect(t, "[nbs nbs-e2e-fail] /build/src $ ")
	tm.send("nbs-extra-tool\r")
	tm.expect(t, "extra tool here")
	tm.send("exit\r")
	exitWithin(t, done, 0)

	for _, c := range []struct {
		with, want string
		env        []string
	}{
		{"gdb", "--with gdb: <nixpkgs> is not available", []string{"NIX_PATH=nixpkgs=/nonexistent/nbs-nixpkgs"}},
		{"/etc/passwd", "not in /nix/store", nil},
		{"/nix/store/00000000000000000000000000000000-gone", "--with /nix/store/00000000000000000000000000000000-gone", nil},
	} {
		res := runNBS(t, nil, c.env, "shell", "--with", c.with, dir, "true")
		if res.code != 1 || !strings.Contains(res.stderr, c.want) || strings.Count(strings.TrimSpace(res.stderr), "\n") > 0 {
			t.Errorf("--with %s: status %d, stderr %q; want 1 and one line with %q", c.with, res.code, res.stderr, c.want)
		}
		assertCleanTmp(t, res)
	}
}

// TestShellChangeSummary: when files in /build changed, nbs says how
// many on exit; when none did, nothing.
func TestShellChangeSummary(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	res := runNBS(t, nil, nil, "shell", dir, "sh", "-c", "echo more >> src/file.txt; echo n > new.txt; mkdir obj; echo o > obj/a.o; rm src/link; touch src/run.sh")
	if want := "nbs: /build changed: 1 file changed, 3 added, 1 removed\n"; res.code != 0 || res.stderr != want {
		t.Errorf("status %d, stderr %q; want %q", res.code, res.stderr, want)
	}
	res = runNBS(t, nil, nil, "shell", dir, "sh", "-c", "cat src/file.txt >/dev/null; touch src/file.txt; echo x > /tmp/elsewhere")
	if res.code != 0 || res.stderr != "" {
		t.Errorf("nothing changed in /build, yet: status %d, stderr %q", res.code, res.stderr)
	}
	// As the sandbox user of a sudo caller and of plain root too.
	for _, r := range runners(t) {
		res := r.shell(t, dir, "sh", "-c", "echo changed > src/file.txt")
		if !strings.Contains(res.stderr, "nbs: /build changed: 1 file changed, 0 added, 0 removed") {
			t.Errorf("%s: stderr %q", r.name, res.stderr)
		}
	}
}

// TestShellKeepDiff: --keep keeps the copy, with the summary before the
// path; nbs diff shows the changes as a patch that applies to the kept
// directory; a later nbs does not take the kept copy for a stale one.
func TestShellKeepDiff(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	tmp := privateTmp(t)

	res := nbsIn(t, tmp, nil, "diff", dir)
	if res.code != 1 || !strings.Contains(res.stderr, "no kept copy of") || !strings.Contains(res.stderr, "nbs shell --keep") {
		t.Errorf("diff before any --keep: status %d, stderr %q", res.code, res.stderr)
	}

	res = nbsIn(t, tmp, nil, "shell", "--keep", dir, "sh", "-c", "echo fixed > src/file.txt; printf 'new\\nfile\\n' > src/new.txt; rm src/link; chmod 0700 src/run.sh")
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	kept := keptPath(res.stderr)
	if res.code != 0 || len(lines) != 2 || lines[0] != "nbs: /build changed: 2 files changed, 1 added, 1 removed" || kept == "" {
		t.Fatalf("status %d, stderr %q", res.code, res.stderr)
	}

	// Another session in the same TMPDIR cleans stale copies: not this.
	if res := nbsIn(t, tmp, nil, "shell", dir, "true"); res.code != 0 {
		t.Fatalf("second nbs: %d %s", res.code, res.stderr)
	}
	if res := nbsIn(t, tmp, nil, "shell", kept, "cat", "/build/src/new.txt"); res.code != 0 || res.stdout != "new\nfile\n" {
		t.Fatalf("the kept result is gone after another nbs ran: %d %q %s", res.code, res.stdout, res.stderr)
	}

	res = nbsIn(t, tmp, nil, "diff", dir)
	want := `Mode of src/run.sh changed: 0755 -> 0700
--- a/src/file.txt
+++ b/src/file.txt
@@ -1 +1 @@
-hello
+fixed
Only in the kept directory: src/link -> file.txt
--- /dev/null
+++ b/src/new.txt
@@ -0,0 +1,2 @@
+new
+file
`
	if res.code != 0 || !sameLines(res.stdout, want) {
		t.Errorf("nbs diff: status %d\n%s\nwant (in any order of files):\n%s\nstderr %s", res.code, res.stdout, want, res.stderr)
	}
	if named := nbsIn(t, tmp, nil, "diff", dir, kept); named.stdout != res.stdout {
		t.Errorf("nbs diff DIR COPY differs from nbs diff DIR:\n%s", named.stdout)
	}
	if st := nbsIn(t, tmp, nil, "diff", "--stat", dir); st.stdout != "M src/file.txt\nD src/link\nA src/new.txt\nM src/run.sh\n" {
		t.Errorf("nbs diff --stat:\n%s", st.stdout)
	}

	// The patch applies to (a copy of) the kept directory.
	if _, err := exec.LookPath("patch"); err == nil {
		work := t.TempDir()
		if out, err := exec.Command("cp", "-a", dir+"/.", work).CombinedOutput(); err != nil {
			t.Fatalf("cp: %v %s", err, out)
		}
		cmd := exec.Command("patch", "-p1", "--quiet")
		cmd.Dir, cmd.Stdin = work, strings.NewReader(res.stdout)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("patch -p1: %v\n%s", err, out)
		}
		for f, want := range map[string]string{"src/file.txt": "fixed\n", "src/new.txt": "new\nfile\n"} {
			if b, _ := os.ReadFile(filepath.Join(work, f)); string(b) != want {
				t.Errorf("patched %s = %q, want %q", f, b, want)
			}
		}
	}
}

// sameLines compares two patches as sets of lines: the order of the
// files in a patch is the order of their paths.
func sameLines(a, b string) bool {
	la, lb := strings.Split(a, "\n"), strings.Split(b, "\n")
	if len(la) != len(lb) {
		return false
	}
	count := map[string]int{}
	for _, l := range la {
		count[l]++
	}
	for _, l := range lb {
		count[l]--
	}
	for _, n := range count {
		if n != 0 {
			return false
		}
	}
	return true
}

// TestListLast: nbs list shows a directory nix-build just kept, with its
// derivation's name; nbs shell --last enters the newest.
func TestListLast(t *testing.T) {
	requireUserNS(t)
	older := buildFailure(t, "fail")
	dir := buildFailure(t, "fail2")
	// Other kept directories may be about (/tmp is shared): make ours
	// the newest by a margin, and the other one older than it.
	future := time.Now().Add(time.Minute)
	os.Chtimes(filepath.Join(dir, "env-vars"), future, future)
	os.Chtimes(filepath.Join(older, "env-vars"), future.Add(-time.Second), future.Add(-time.Second))

	res := runNBS(t, nil, nil, "list")
	lines := strings.Split(strings.TrimSpace(res.stdout), "\n")
	if res.code != 0 || len(lines) < 3 || !strings.HasPrefix(lines[0], "AGE") {
		t.Fatalf("nbs list: status %d\n%s\n%s", res.code, res.stdout, res.stderr)
	}
	first, second := strings.Fields(lines[1]), strings.Fields(lines[2])
	if len(first) < 4 || first[len(first)-2] != "nbs-e2e-fail2" || first[len(first)-1] != dir {
		t.Errorf("first line %q; want nbs-e2e-fail2 in %s", lines[1], dir)
	}
	if len(second) < 4 || second[len(second)-2] != "nbs-e2e-fail" || second[len(second)-1] != older {
		t.Errorf("second line %q; want nbs-e2e-fail in %s", lines[2], older)
	}

	res = runNBS(t, nil, nil, "shell", "--last", "cat", "second.txt")
	if res.code != 0 || res.stdout != "second\n" || !strings.Contains(res.stderr, "nbs: entering nbs-e2e-fail2") {
		t.Errorf("shell --last: status %d, stdout %q, stderr %q", res.code, res.stdout, res.stderr)
	}
	assertCleanTmp(t, res)
}

// TestShellProgress: copying a big kept directory draws a progress bar
// on a terminal, cleared at the end, and prints nothing of it when
// stderr is not a terminal. NBS_PROGRESS_DELAY=0 shows it at once.
func TestShellProgress(t *testing.T) {
	requireUserNS(t)
	kept := buildFailure(t, "fail")
	big := t.TempDir()
	os.Chmod(big, 0o755)
	env, err := os.ReadFile(filepath.Join(kept, "env-vars"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(big, "env-vars"), env, 0o644)
	data := bytes.Repeat([]byte("x"), 1000)
	for d := 0; d < 100; d++ {
		sub := filepath.Join(big, fmt.Sprintf("d%02d", d))
		os.Mkdir(sub, 0o755)
		for f := 0; f < 300; f++ {
			os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), data, 0o644)
		}
	}
	// The progress bar is the copy's.
	delay := []string{"NBS_PROGRESS_DELAY=0", "NBS_ENTRY_MODE=copy"}

	res := runNBS(t, nil, delay, "shell", big, "true")
	if res.code != 0 || strings.Contains(res.stderr, "copying") || strings.Contains(res.stderr, "\r") {
		t.Errorf("without a terminal: status %d, stderr %q", res.code, res.stderr)
	}

	tm := newTerm(t)
	_, done := onTerm(t, tm, append(delay, "TMPDIR="+privateTmp(t)), "shell", big, "echo", "sandbox-ran")
	tm.expect(t, "\rcopying /build  [")
	tm.expect(t, "/30001 files") // and env-vars
	tm.expect(t, "ETA ")
	// Blanked (\r, spaces, \r) before the command in the sandbox ran.
	tm.expect(t, " \rsandbox-ran")
	exitWithin(t, done, 0)
}
