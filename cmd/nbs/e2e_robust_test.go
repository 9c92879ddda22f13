//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startNBS starts nbs shell in the background with a private TMPDIR and
// waits until the command inside has printed its first line.
func startNBS(t *testing.T, dir string, script string) (*exec.Cmd, string) {
	t.Helper()
	tmp := privateTmp(t)
	cmd := exec.Command(nbsBin, "shell", dir, "sh", "-c", script)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=/nonexistent"}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("nbs printed nothing: %v", err)
	}
	if strings.TrimSpace(line) != "started" {
		t.Fatalf("nbs printed %q", line)
	}
	return cmd, tmp
}

// processesWith lists host processes whose command line contains s.
func processesWith(s string) []string {
	var found []string
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err == nil && strings.Contains(strings.ReplaceAll(string(b), "\x00", " "), s) {
			found = append(found, filepath.Base(d)+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return found
}

// runsBelow reports whether process top or one below it runs with
// exactly this command line.
func runsBelow(top int, cmdline string) bool {
	ps, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range ps {
		c, _ := os.ReadFile(p + "/cmdline")
		pid, _ := strconv.Atoi(filepath.Base(p))
		if strings.TrimRight(strings.ReplaceAll(string(c), "\x00", " "), " ") == cmdline && descends(pid, top) {
			return true
		}
	}
	return false
}

// descends reports whether process pid is top or below it.
func descends(pid, top int) bool {
	for pid > 1 && pid != top {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		// pid (comm) state ppid …; comm may hold spaces and parentheses.
		f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
		if len(f) < 2 {
			return false
		}
		pid, _ = strconv.Atoi(f[1])
	}
	return pid == top
}

// gone waits (up to hang) until no host process's command line contains
// s, and returns those still there: the kernel ends a pid namespace's
// processes a moment after its init, not before nbs exits.
func gone(s string) []string {
	eventually(func() bool { return len(processesWith(s)) == 0 })
	return processesWith(s)
}

func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			if ws := ee.Sys().(syscall.WaitStatus); ws.Signaled() {
				// nbs must catch the signal, clean up and exit.
				t.Errorf("nbs was killed by %v instead of handling it", ws.Signal())
				return 128 + int(ws.Signal())
			}
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		cmd.Process.Kill()
		<-done
		t.Fatalf("nbs did not exit within %v", within)
	}
	return -1
}

func tmpEntries(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestShellSignals: SIGINT, SIGTERM and SIGHUP to nbs end every process
// in the sandbox, remove the copy, and nbs exits 128+N.
func TestShellSignals(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			marker := fmt.Sprintf("%d", 100000+time.Now().UnixNano()%100000)
			cmd, tmp := startNBS(t, dir, "sleep "+marker+" & echo started; wait")
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			endedBySignal(t, cmd, sig, "sleep "+marker, tmp)
		})
	}
}

// TestShellStaleCopy: a copy left by a SIGKILLed nbs is removed by the
// next run; a copy whose nbs is still alive is left alone.
func TestShellStaleCopy(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	marker := fmt.Sprintf("%d", 200000+time.Now().UnixNano()%100000)
	cmd, tmp := startNBS(t, dir, "sleep "+marker+" & echo started; wait")
	cmd.Process.Kill()
	cmd.Wait()
	if p := gone("sleep " + marker); len(p) > 0 {
		t.Errorf("the sandbox outlived its SIGKILLed nbs: %v", p)
	}
	left := tmpEntries(tmp)
	if len(left) != 1 || !strings.HasPrefix(left[0], "nbs-") {
		t.Fatalf("after SIGKILL, TMPDIR holds %v; want one nbs-* copy", left)
	}

	// A copy whose owner lives (we hold its lock) must survive.
	alive := filepath.Join(tmp, "nbs-alive")
	os.Mkdir(alive, 0o700)
	lock, err := os.Create(filepath.Join(alive, ".lock"))
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}

	next := exec.Command(nbsBin, "shell", dir, "true")
	next.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
	if out, err := next.CombinedOutput(); err != nil {
		t.Fatalf("next nbs: %v\n%s", err, out)
	}
	if got := tmpEntries(tmp); len(got) != 1 || got[0] != "nbs-alive" {
		t.Errorf("after the next run TMPDIR holds %v; want only the live nbs-alive", got)
	}
}

// TestShellKeep: --keep keeps /build, with the work done inside (a copy,
// or a view's changes: entering the kept result shows it either way),
// and says where it is.
func TestShellKeep(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	res := runNBS(t, nil, nil, "shell", "--keep", dir, "sh", "-c", "echo fixed > /build/src/file.txt")
	kept := keptPath(res.stderr)
	if res.code != 0 || kept == "" {
		t.Fatalf("status %d, no kept path in %q", res.code, res.stderr)
	}
	again := nbsIn(t, res.tmp, nil, "shell", kept, "cat", "/build/src/file.txt")
	if again.code != 0 || again.stdout != "fixed\n" {
		t.Errorf("the kept result has %q (status %d): %s", again.stdout, again.code, again.stderr)
	}
	if _, err := os.Stat(filepath.Join(keptWorkDir(kept), ".lock")); err != nil {
		t.Errorf("kept result's lock: %v", err)
	}
}

// TestShellUserNSDisabled: where user namespaces are switched off, nbs
// says so and how to fix it, instead of "operation not permitted". The
// test switches them off for a child user namespace of its own.
func TestShellUserNSDisabled(t *testing.T) {
	requireUserNS(t)
	if _, err := exec.LookPath("unshare"); err != nil {
		missing(t, "unshare not found (util-linux)")
	}
	dir := buildFailure(t, "fail")
	tmp := t.TempDir()
	os.Chmod(tmp, 0o1777)
	cmd := exec.Command("unshare", "--user", "--map-root-user", "sh", "-c",
		`echo 0 > /proc/sys/user/max_user_namespaces && exec "$0" shell "$1" true`, nbsBin, dir)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("nbs succeeded without user namespaces:\n%s", out)
	}
	s := string(out)
	if !strings.Contains(s, "user namespaces are not available") || !strings.Contains(s, "sysctl -w user.max_user_namespaces") {
		t.Errorf("message does not say what is wrong and how to fix it:\n%s", s)
	}
	if e := tmpEntries(tmp); len(e) > 0 {
		t.Errorf("TMPDIR not cleaned: %v", e)
	}
}

// TestShellSignalDuringCopy: a signal while nbs copies a big kept
// directory stops the copy and removes the partial copy.
func TestShellSignalDuringCopy(t *testing.T) {
	requireUserNS(t)
	kept := buildFailure(t, "fail")
	big := t.TempDir()
	env, err := os.ReadFile(filepath.Join(kept, "env-vars"))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(big, "env-vars"), env, 0o644)
	data := make([]byte, 64<<10)
	for d := 0; d < 40; d++ {
		sub := filepath.Join(big, fmt.Sprintf("d%02d", d))
		os.Mkdir(sub, 0o755)
		for f := 0; f < 200; f++ {
			os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%03d", f)), data, 0o644)
		}
	}
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			tmp, _ := os.MkdirTemp("", "nbs-e2e-tmp-")
			os.Chmod(tmp, 0o1777)
			defer os.RemoveAll(tmp)
			cmd := exec.Command(nbsBin, "shell", big, "sleep", "30")
			cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			// Wait for the copy to begin.
			eventually(func() bool { return len(tmpEntries(tmp)) > 0 })
			cmd.Process.Signal(sig)
			if code := waitExit(t, cmd, hang); code != 128+int(sig) {
				t.Errorf("exit status %d, want %d", code, 128+int(sig))
			}
			if e := tmpEntries(tmp); len(e) > 0 {
				t.Errorf("partial copy left behind: %v", e)
			}
		})
	}
}

// endedBySignal checks what sending sig to a running nbs must come to:
// nbs exits 128+sig, no process whose command line has marker (one the
// sandbox started) is left, and nothing is left in its TMPDIR.
func endedBySignal(t *testing.T, cmd *exec.Cmd, sig syscall.Signal, marker, tmp string) {
	t.Helper()
	if code := waitExit(t, cmd, hang); code != 128+int(sig) {
		t.Errorf("exit status %d, want %d", code, 128+int(sig))
	}
	if p := gone(marker); len(p) > 0 {
		t.Errorf("sandbox processes survive: %v", p)
	}
	if e := tmpEntries(tmp); len(e) > 0 {
		t.Errorf("TMPDIR not cleaned: %v", e)
	}
}
