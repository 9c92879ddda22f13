//go:build linux

package wrapper

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nix-build-shell/nbs/nix"
)

func TestBuildArgs(t *testing.T) {
	tests := []struct {
		program string
		args    []string
		want    []string
	}{
		{"nix-build", []string{"default.nix"}, []string{"--keep-failed", "default.nix"}},
		{"nix-build", []string{"-A", "hello", "-K", "x.nix"}, []string{"-A", "hello", "-K", "x.nix"}},
		{"nix-build", []string{"--keep-failed"}, []string{"--keep-failed"}},
		{"nix-build", []string{"--no-keep-failed"}, []string{"--no-keep-failed"}},
		{"nix-build", []string{"-vK"}, []string{"-vK"}},
		{"nix-build", []string{"--option", "keep-failed", "false"}, []string{"--option", "keep-failed", "false"}},
		// Values of options are not flags.
		{"nix-build", []string{"--argstr", "x", "-K"}, []string{"--keep-failed", "--argstr", "x", "-K"}},
		{"nix-build", []string{"-A", "--keep-failed"}, []string{"--keep-failed", "-A", "--keep-failed"}},
		{"/usr/bin/nix-build", nil, []string{"--keep-failed"}},
		{"nix", []string{".#hello"}, []string{"build", "--keep-failed", "-L", ".#hello"}},
		{"/run/current-system/sw/bin/nix", []string{"-f", "x.nix", "a"}, []string{"build", "--keep-failed", "-L", "-f", "x.nix", "a"}},
		{"nix", []string{"build", ".#a"}, []string{"build", "--keep-failed", "-L", ".#a"}},
		{"nix", []string{"--extra-experimental-features", "nix-command flakes", "build", ".#a"},
			[]string{"--extra-experimental-features", "nix-command flakes", "build", "--keep-failed", "-L", ".#a"}},
		{"nix", []string{"--print-build-logs", ".#a"}, []string{"build", "--keep-failed", "--print-build-logs", ".#a"}},
		{"nix", []string{"--no-print-build-logs", "-K", ".#a"}, []string{"build", "--no-print-build-logs", "-K", ".#a"}},
		{"nix", []string{"--log-format", "internal-json", ".#a"}, []string{"build", "--keep-failed", "--log-format", "internal-json", ".#a"}},
		{"nix", []string{"-L", ".#a", "--", "-K"}, []string{"build", "--keep-failed", "-L", ".#a", "--", "-K"}},
		// "build" as a flake attribute, after the subcommand position.
		{"nix", []string{"--file", "build", "x"}, []string{"build", "--keep-failed", "-L", "--file", "build", "x"}},
	}
	for _, tt := range tests {
		got := buildArgs(tt.program, tt.args)
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("buildArgs(%q, %q)\n got %q\nwant %q", tt.program, tt.args, got, tt.want)
		}
	}
}

func TestDefaultWatchDirs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir+"/")
	got := DefaultWatchDirs(dir)
	if len(got) == 0 || got[0] != dir {
		t.Fatalf("DefaultWatchDirs(%q) = %q, want it first", dir, got)
	}
	seen := map[string]bool{}
	for _, d := range got {
		if seen[d] {
			t.Errorf("%s twice in %q", d, got)
		}
		seen[d] = true
		if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
			t.Errorf("%s is not an existing directory", d)
		}
	}
	if got := DefaultWatchDirs(filepath.Join(dir, "missing")); len(got) > 0 && got[0] == filepath.Join(dir, "missing") {
		t.Errorf("a missing build-dir is listed: %q", got)
	}
}

// notifyWriter records what is written and tells waiters as it comes.
type notifyWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	more chan struct{}
}

func newNotifyWriter() *notifyWriter { return &notifyWriter{more: make(chan struct{}, 1)} }

func (w *notifyWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	select {
	case w.more <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (w *notifyWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// hang is how long a test waits for something that must happen before
// it calls it a hang: long, so that a busy machine never fails a test.
const hang = 2 * time.Minute

// waitFor waits until what was written contains s.
func (w *notifyWriter) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(hang)
	for !strings.Contains(w.String(), s) {
		select {
		case <-w.more:
		case <-deadline:
			t.Fatalf("no %q after %v; got %q", s, hang, w.String())
		}
	}
}

// TestCopyStream checks that stderr is passed on as it is read (a line
// without its newline arrives before the writer goes on), byte for byte,
// while the scanner sees the same bytes.
func TestCopyStream(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	out := newNotifyWriter()
	s := NewScanner()
	done := make(chan struct{})
	go func() {
		copyStream(pr, out, s, discard)
		close(done)
	}()

	var sent bytes.Buffer
	send := func(b []byte) {
		sent.Write(b)
		if _, err := pw.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	send([]byte("\r[0/1 built] building a\x1b[K"))
	out.waitFor(t, "building a\x1b[K")
	send([]byte("\r\x1b[Knote: keeping build directory '/tmp/nix-build-a.drv-0'\n"))
	out.waitFor(t, "drv-0'\n")

	junk := make([]byte, 1<<20)
	rand.Read(junk)
	for i := range junk {
		if junk[i] == '\n' || junk[i] == '\r' {
			junk[i] = 'x'
		}
	}
	send(junk)
	send([]byte("\nerror: builder for '/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-a.drv' failed with exit code 2\n"))
	pw.Close()
	select {
	case <-done:
	case <-time.After(hang):
		t.Fatal("copyStream did not return at EOF")
	}
	if got := out.String(); got != sent.String() {
		t.Fatalf("output differs from input (%d bytes vs %d)", len(got), sent.Len())
	}
	want := []Failure{{Drv: "/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-a.drv", KeptDir: "/tmp/nix-build-a.drv-0", ExitCode: 2}}
	if got := s.Failures(); !reflect.DeepEqual(got, want) {
		t.Errorf("scanner saw %+v, want %+v", got, want)
	}
}

func TestCopyStreamWriterFails(t *testing.T) {
	s := NewScanner()
	in := strings.NewReader("note: keeping build directory '/tmp/nix-build-a.drv-0'\nerror: builder for '/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-a.drv' failed with exit code 2\n")
	copyStream(in, failWriter{}, s, discard)
	if len(s.Failures()) != 1 {
		t.Errorf("a failing writer stopped the scan: %+v", s.Failures())
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, syscall.EPIPE }

func TestRunNotFound(t *testing.T) {
	_, err := Run(context.Background(), Options{Program: "nbs-no-such-nix-build"})
	if !errors.Is(err, exec.ErrNotFound) || !strings.Contains(err.Error(), "nbs-no-such-nix-build") {
		t.Fatalf("err = %v, want exec.ErrNotFound naming the program", err)
	}
}

func sh(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("sh")
	if err != nil {
		t.Skipf("sh not installed: %v", err)
	}
	return p
}

// TestRunForwardsSignal: a SIGINT sent to nbs alone (kill, not the
// terminal) reaches the program, and Run reports it.
func TestRunForwardsSignal(t *testing.T) {
	errw := newNotifyWriter()
	type ret struct {
		res Result
		err error
	}
	rc := make(chan ret, 1)
	go func() {
		res, err := Run(context.Background(), Options{
			Program: sh(t),
			Args:    []string{"-c", `trap 'echo got-int >&2; exit 7' INT; echo ready >&2; while :; do sleep 0.05; done`},
			Stderr:  errw,
		})
		rc <- ret{res, err}
	}()
	errw.waitFor(t, "ready")
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	select {
	case r := <-rc:
		if r.err != nil || r.res.Signal != syscall.SIGINT || r.res.ExitCode != 7 {
			t.Fatalf("Run = %+v, %v; want Signal SIGINT, ExitCode 7", r.res, r.err)
		}
	case <-time.After(hang):
		t.Fatal("Run did not return after SIGINT")
	}
	if !strings.Contains(errw.String(), "got-int") {
		t.Errorf("the program did not get the signal: %q", errw.String())
	}
}

// TestRunKillsStubbornProgram: a program that ignores the forwarded
// signal is killed after killGrace; no process is left.
func TestRunKillsStubbornProgram(t *testing.T) {
	errw := newNotifyWriter()
	rc := make(chan Result, 1)
	go func() {
		res, _ := Run(context.Background(), Options{
			Program: sh(t),
			Args:    []string{"-c", `trap '' TERM; echo ready $$ >&2; while :; do sleep 0.05; done`},
			Stderr:  errw,
		})
		rc <- res
	}()
	errw.waitFor(t, "ready")
	var pid int
	if _, err := fmt.Sscanf(errw.String(), "ready %d", &pid); err != nil {
		t.Fatalf("no pid in %q: %v", errw.String(), err)
	}
	start := time.Now()
	syscall.Kill(os.Getpid(), syscall.SIGTERM)
	select {
	case res := <-rc:
		if res.Signal != syscall.SIGTERM || res.ExitCode != 128+int(syscall.SIGKILL) {
			t.Fatalf("Run = %+v; want Signal SIGTERM and ExitCode 137", res)
		}
		if d := time.Since(start); d < killGrace {
			t.Errorf("returned after %v, before the grace of %v", d, killGrace)
		}
	case <-time.After(killGrace + hang):
		t.Fatal("Run did not return")
	}
	if alive(pid) {
		t.Errorf("process %d is still running", pid)
	}
}

// alive reports whether pid runs (a zombie does not count).
func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

func TestRunContextCancel(t *testing.T) {
	errw := newNotifyWriter()
	ctx, cancel := context.WithCancel(context.Background())
	rc := make(chan Result, 1)
	go func() {
		res, _ := Run(ctx, Options{Program: sh(t), Args: []string{"-c", `echo ready >&2; exec sleep 60`}, Stderr: errw})
		rc <- res
	}()
	errw.waitFor(t, "ready")
	cancel()
	select {
	case res := <-rc:
		if res.Signal != nil || res.ExitCode != 128+int(syscall.SIGTERM) {
			t.Fatalf("Run = %+v; want no Signal and ExitCode 143", res)
		}
	case <-time.After(hang):
		t.Fatal("Run did not return after cancel")
	}
}

// TestRunTerminal: when nbs's stderr is a terminal, the program's is one
// too, with the same size, and what it writes arrives unchanged.
func TestRunTerminal(t *testing.T) {
	if _, err := exec.LookPath("stty"); err != nil {
		t.Skipf("stty not installed: %v", err)
	}
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	ws := &unix.Winsize{Row: 33, Col: 101}
	rc, err := master.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	rc.Control(func(fd uintptr) { err = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) })
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(context.Background(), Options{
		Program: sh(t),
		Args:    []string{"-c", `if [ -t 2 ]; then printf 'tty \033[31mred\033[0m\rprogress ' >&2; stty -F /dev/stderr size >&2; else echo not a tty >&2; fi`},
		Stderr:  slave,
	})
	if err != nil || res.ExitCode != 0 {
		t.Fatalf("Run = %+v, %v", res, err)
	}
	want := "tty \x1b[31mred\x1b[0m\rprogress 33 101\n"
	got := make([]byte, 0, len(want))
	master.SetReadDeadline(time.Now().Add(hang))
	buf := make([]byte, 256)
	for len(got) < len(want) {
		n, err := master.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if string(got) != want {
		t.Errorf("terminal got %q, want %q", got, want)
	}
}

// TestCrossCheck covers the fallback discovery and the env-vars check on
// directories made to look like Nix's.
func TestCrossCheck(t *testing.T) {
	root := t.TempDir()
	mk := func(rel, name string) string {
		d := filepath.Join(root, rel)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if name != "" {
			os.WriteFile(filepath.Join(d, "env-vars"), []byte("declare -x out=\"/nix/store/x\"\ndeclare -x name=\""+name+"\"\n"), 0o644)
		}
		return d
	}
	const (
		foo = "/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-foo.drv"
		bar = "/nix/store/vrhbsqyv4853052b7jnfqg816lb16hqk-bar.drv"
		baz = "/nix/store/khp5d77rvambqdrzsd8v356by6dgrcm2-baz.drv"
		rem = "/nix/store/kgzyzm04hz3rccwfkir457pdcss1vpip-foo.drv"
	)
	fooDir := mk("nix-build-foo.drv-0", "")
	barDir := mk("nix-12-34/build", "bar")
	mk("nix-build-other.drv-0", "")
	bazA := mk("nix-build-baz.drv-0/build", "")
	bazB := mk("nix-build-baz.drv-1/build", "")
	gone := filepath.Join(root, "nix-build-gone.drv-0")
	created := []string{fooDir, filepath.Dir(barDir), filepath.Join(root, "nix-build-other.drv-0"), filepath.Dir(bazA), filepath.Dir(bazB), gone}

	fails := []Failure{
		{Drv: foo, ExitCode: 1},
		{Drv: bar, ExitCode: 2},
		{Drv: baz, ExitCode: 3},                     // two candidates: left alone
		{Drv: rem, Builder: "ssh://h", ExitCode: 4}, // remote: never a local dir
		{Drv: "/nix/store/q2vwc7r7m0b3zj8zx8y1n8ck1mz3a2r0-gone.drv", ExitCode: 5},
	}
	crossCheck(fails, created, discard)
	want := []string{fooDir, barDir, "", "", ""}
	for i, f := range fails {
		if f.KeptDir != want[i] {
			t.Errorf("%s: KeptDir %q, want %q", nix.DrvName(f.Drv), f.KeptDir, want[i])
		}
	}

	// Crossed nameless notes are swapped back by env-vars.
	a := "/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-a.drv"
	b := "/nix/store/vrhbsqyv4853052b7jnfqg816lb16hqk-b.drv"
	dirA, dirB := mk("nix-1-1/build", "a"), mk("nix-1-2/build", "b")
	fails = []Failure{{Drv: a, KeptDir: dirB}, {Drv: b, KeptDir: dirA}}
	crossCheck(fails, nil, discard)
	if fails[0].KeptDir != dirA || fails[1].KeptDir != dirB {
		t.Errorf("not swapped: %+v", fails)
	}
}

// TestRunFallback: a failure the log gives no note for gets the build
// directory that appeared in a watched root meanwhile.
func TestRunFallback(t *testing.T) {
	root := t.TempDir()
	const drv = "/nix/store/sh0ijqpwi21125p4h52m9fanhvdpakkb-foo.drv"
	res, err := Run(context.Background(), Options{
		Program: sh(t),
		Args: []string{"-c", `mkdir "$1/nix-build-other.drv-0" "$1/nix-build-foo.drv-0"; ` +
			`echo "error: builder for '` + drv + `' failed with exit code 2" >&2; exit 100`, "sh", root},
		Stderr:    io.Discard,
		WatchDirs: []string{root},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Failure{{Drv: drv, KeptDir: filepath.Join(root, "nix-build-foo.drv-0"), ExitCode: 2}}
	if res.ExitCode != 100 || !reflect.DeepEqual(res.Failures, want) {
		t.Errorf("Run = %+v, want exit 100 and %+v", res, want)
	}
}

func TestEnvName(t *testing.T) {
	tests := map[string]string{
		`declare -x name="hello-2.12"`:   "hello-2.12",
		`declare -x name="a\"b\\c\$d"`:   `a"b\c$d`,
		`export name=plain`:              "plain",
		`declare -x name=$'multi\nline'`: "multi\nline",
	}
	for in, want := range tests {
		if got, ok := envName(in); !ok || got != want {
			t.Errorf("envName(%q) = %q, %v; want %q", in, got, ok, want)
		}
	}
	if _, ok := envName(`declare -x pname="x"`); ok {
		t.Error("pname read as name")
	}
}

func TestWatcher(t *testing.T) {
	root := t.TempDir()
	os.Mkdir(filepath.Join(root, "nix-build-old.drv-0"), 0o755)
	wa := startWatch([]string{root + "/", filepath.Join(root, "missing")}, discard)
	for _, n := range []string{"nix-build-a.drv-0", "unrelated", "nix-7-8", "nix-build-gone.drv-0"} {
		os.Mkdir(filepath.Join(root, n), 0o755)
	}
	os.Remove(filepath.Join(root, "nix-build-gone.drv-0"))
	got := wa.stop()
	has := map[string]bool{}
	for _, p := range got {
		has[p] = true
	}
	for _, n := range []string{"nix-build-a.drv-0", "nix-7-8"} {
		if !has[filepath.Join(root, n)] {
			t.Errorf("%s not seen: %q", n, got)
		}
	}
	for _, n := range []string{"nix-build-old.drv-0", "unrelated"} {
		if has[filepath.Join(root, n)] {
			t.Errorf("%s seen: %q", n, got)
		}
	}
	if again := wa.stop(); !reflect.DeepEqual(again, got) {
		t.Errorf("second stop gives %q, first %q", again, got)
	}
}

// Tests with a real nix-build. They need Nix that can build here (root,
// or a daemon) and a static bash at /bin/bash-static for the builder.

type nixTest struct {
	nixBuild string
	expr     string
	nonce    string
	dir      string // working directory and TMPDIR (where the build dirs go)
}

func newNixTest(t *testing.T) *nixTest {
	t.Helper()
	p, err := exec.LookPath("nix-build")
	if err != nil {
		t.Skipf("nix-build not installed: %v", err)
	}
	if _, err := os.Stat("/bin/bash-static"); err != nil {
		t.Skipf("no static bash for the test builder: %v", err)
	}
	if os.Geteuid() != 0 {
		if _, err := os.Stat("/nix/var/nix/daemon-socket/socket"); err != nil {
			t.Skipf("not root and no nix-daemon: %v", err)
		}
	}
	expr, err := filepath.Abs("testdata/run.nix")
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 6)
	rand.Read(b)
	return &nixTest{nixBuild: p, expr: expr, nonce: "nbs" + hex.EncodeToString(b), dir: t.TempDir()}
}

// keptWhereNixKeepsIt: Nix keeps a failed build's directory in the
// TMPDIR it runs with up to 2.29 (nested as …/build from 2.24), and under
// /nix/var/nix/builds from 2.30.
func (n *nixTest) keptWhereNixKeepsIt(dir string) bool {
	return strings.HasPrefix(dir, n.dir+"/") || strings.HasPrefix(dir, "/nix/var/nix/builds/")
}

// removeKept removes a kept build directory and, where Nix nests it
// (…/nix-PID-N/build), the then empty directory holding it.
func removeKept(dir string) {
	os.RemoveAll(dir)
	if filepath.Base(dir) == "build" && strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "nix-") {
		os.Remove(filepath.Dir(dir))
	}
}

func (n *nixTest) options(attr string, stderr io.Writer) Options {
	return Options{
		Program:   n.nixBuild,
		Args:      buildArgs("nix-build", []string{n.expr, "-A", attr, "--argstr", "nonce", n.nonce}),
		Dir:       n.dir,
		Env:       append(os.Environ(), "TMPDIR="+n.dir),
		Stderr:    stderr,
		WatchDirs: DefaultWatchDirs(n.dir),
	}
}

// processes lists the live processes whose command line has s.
func processes(s string) []string {
	var out []string
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err == nil && bytes.Contains(b, []byte(s)) && alive(pid) {
			out = append(out, e.Name()+": "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return out
}

func TestRunNixBuildFailure(t *testing.T) {
	n := newNixTest(t)
	var stderr bytes.Buffer
	res, err := Run(context.Background(), n.options("bad", &stderr))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("nix-build's stderr:\n%s", stderr.String())
	if res.ExitCode != 100 || res.Signal != nil {
		t.Errorf("ExitCode %d, Signal %v; want 100, nil", res.ExitCode, res.Signal)
	}
	if len(res.Failures) != 1 {
		t.Fatalf("Failures = %+v, want one", res.Failures)
	}
	f := res.Failures[0]
	t.Cleanup(func() { removeKept(f.KeptDir) })
	if !strings.HasSuffix(f.Drv, "-nbs-wrapper-bad.drv") || f.ExitCode != 3 || f.Builder != "" {
		t.Errorf("Failure = %+v", f)
	}
	if !n.keptWhereNixKeepsIt(f.KeptDir) {
		t.Errorf("KeptDir %q is neither in TMPDIR %s nor in /nix/var/nix/builds", f.KeptDir, n.dir)
	}
	if name := keptName(f.KeptDir); name != "nbs-wrapper-bad" {
		t.Errorf("env-vars in %s names %q", f.KeptDir, name)
	}
	if !strings.Contains(stderr.String(), "hi "+n.nonce+"\n") || !strings.Contains(stderr.String(), "note: keeping build directory") {
		t.Errorf("the log is not nix-build's: %q", stderr.String())
	}
}

func TestRunNixBuildSuccess(t *testing.T) {
	n := newNixTest(t)
	out, err := os.Create(filepath.Join(t.TempDir(), "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	opts := n.options("good", io.Discard)
	opts.Stdout = out
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if res.ExitCode != 0 || len(res.Failures) != 0 || len(res.Unmatched) != 0 {
		t.Fatalf("Run = %+v, want exit 0 and no failures", res)
	}
	link, err := os.Readlink(filepath.Join(n.dir, "result"))
	if err != nil {
		t.Fatalf("no result link: %v", err)
	}
	stdout, _ := os.ReadFile(out.Name())
	if strings.TrimSpace(string(stdout)) != link || !strings.HasSuffix(link, "-nbs-wrapper-good") {
		t.Errorf("stdout %q, result -> %q", stdout, link)
	}
}

// TestRunNixBuildInterrupt sends SIGINT to the test process (as kill(1)
// would to nbs) during a slow build: Run passes it on, nix-build stops,
// and nothing of the build is left running.
func TestRunNixBuildInterrupt(t *testing.T) {
	n := newNixTest(t)
	errw := newNotifyWriter()
	rc := make(chan Result, 1)
	go func() {
		res, err := Run(context.Background(), n.options("slow", errw))
		if err != nil {
			t.Error(err)
		}
		rc <- res
	}()
	errw.waitFor(t, "sleeping "+n.nonce)
	if ps := processes(n.nonce); len(ps) < 2 {
		t.Fatalf("expected nix-build and its builder to run, found %q", ps)
	}
	start := time.Now()
	syscall.Kill(os.Getpid(), syscall.SIGINT)
	var res Result
	select {
	case res = <-rc:
	case <-time.After(hang):
		t.Fatalf("Run did not return within %v of SIGINT; running: %q", hang, processes(n.nonce))
	}
	t.Logf("returned %v after SIGINT: %+v\n%s", time.Since(start), res, errw.String())
	if res.Signal != syscall.SIGINT || res.ExitCode == 0 {
		t.Errorf("Signal %v, ExitCode %d; want SIGINT and a failure", res.Signal, res.ExitCode)
	}
	for _, f := range res.Failures {
		t.Cleanup(func() { removeKept(f.KeptDir) })
	}
	// nix-build kills its builder as it exits; give the kernel a moment.
	deadline := time.Now().Add(hang)
	for len(processes(n.nonce)) > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if ps := processes(n.nonce); len(ps) > 0 {
		t.Errorf("still running after Run returned: %q", ps)
	}
}

// TestRunNixTerminal runs `nix build` with a terminal as stderr: Nix must
// see a terminal (it draws colours only then) and the scanner must still
// find the failure in what it draws.
func TestRunNixTerminal(t *testing.T) {
	n := newNixTest(t)
	nix, err := exec.LookPath("nix")
	if err != nil {
		t.Skipf("nix not installed: %v", err)
	}
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pty here: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	var shown bytes.Buffer
	read := make(chan struct{})
	go func() {
		defer close(read)
		buf := make([]byte, 4096)
		for {
			k, err := master.Read(buf)
			shown.Write(buf[:k])
			if err != nil {
				return
			}
		}
	}()
	opts := n.options("bad", slave)
	opts.Program = nix
	opts.Args = buildArgs("nix", []string{"--extra-experimental-features", "nix-command", "--no-link",
		"-f", n.expr, "bad", "--argstr", "nonce", n.nonce})
	opts.Env = append(opts.Env, "TERM=xterm-256color")
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	// With the slave closed, the read ends (EIO) once what Nix drew is
	// read; the deadline only catches a hang.
	slave.Close()
	master.SetReadDeadline(time.Now().Add(hang))
	<-read
	t.Logf("args %q\nshown: %q", opts.Args, shown.String())
	if len(res.Failures) != 1 {
		t.Fatalf("Failures = %+v", res.Failures)
	}
	f := res.Failures[0]
	t.Cleanup(func() { removeKept(f.KeptDir) })
	if f.ExitCode != 3 || !n.keptWhereNixKeepsIt(f.KeptDir) {
		t.Errorf("Failure = %+v", f)
	}
	if !strings.Contains(shown.String(), "\x1b[31;1merror:") {
		t.Errorf("no colour: Nix did not see a terminal")
	}
}

// TestUntied: a kept directory the watcher tied to a failure is no longer
// reported as unmatched; a remote failure's directory of the same name
// is another machine's.
func TestUntied(t *testing.T) {
	fails := []Failure{
		{Drv: "/nix/store/a-x.drv", KeptDir: "/tmp/nix-build-x.drv-0/"},
		{Drv: "/nix/store/b-y.drv", KeptDir: "/tmp/nix-build-y.drv-0", Builder: "ssh://b"},
	}
	got := untied([]string{"/tmp/nix-build-x.drv-0", "/tmp/nix-build-y.drv-0", "/tmp/nix-1-2"}, fails)
	if strings.Join(got, " ") != "/tmp/nix-build-y.drv-0 /tmp/nix-1-2" {
		t.Errorf("untied = %q", got)
	}
}
