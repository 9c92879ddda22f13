//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nix-build-shell/nbs/testdata/escape/report"
)

// The end-to-end tests run the real nbs binary against build directories
// that real nix-build kept, in Nix's real sandbox (testdata/e2e). They
// need Nix, Debian's bash-static and busybox-static and user namespaces;
// where those are missing they skip loudly, and with NBS_E2E_REQUIRED=1
// (CI) they fail instead.

var nbsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "nbs-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	// The unprivileged test user must be able to run it.
	os.Chmod(dir, 0o755)
	nbsBin = filepath.Join(dir, "nbs")
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	// Static, as the README and the flake build it.
	build := exec.Command(goBin, "build", "-o", nbsBin, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build nbs: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// hang is how long a test waits for something that must happen before
// it calls it a hang. It only catches hangs: on a busy machine copying a
// 30,001-file kept dir alone takes 20 s, so no test may assume a speed.
const hang = 2 * time.Minute

// eventually polls cond until it holds, for at most hang, and says
// whether it held.
func eventually(cond func() bool) bool {
	for end := time.Now().Add(hang); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// entryEnv passes NBS_ENTRY_MODE on to nbs, so that the suite can run
// in one entry mode (NBS_ENTRY_MODE=copy go test ./...); tests that set
// their own come after it and win.
func entryEnv() []string {
	if m := os.Getenv("NBS_ENTRY_MODE"); m != "" {
		return []string{"NBS_ENTRY_MODE=" + m}
	}
	return nil
}

// missing skips the test, or fails it in CI where every prerequisite is
// installed by .ci/run.
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("NBS_E2E_REQUIRED") != "" {
		t.Fatalf("end-to-end prerequisite missing (NBS_E2E_REQUIRED is set): %s", reason)
	}
	t.Skipf("SKIPPED, prerequisite missing: %s (run .ci/setup-host as root to install it)", reason)
}

func requireNix(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("nix-build"); err != nil {
		missing(t, "nix-build not found")
	}
	for _, f := range []string{"/bin/bash-static", "/bin/busybox"} {
		if _, err := os.Stat(f); err != nil {
			missing(t, "%s not found (Debian packages bash-static, busybox-static)", f)
		}
	}
}

func requireUserNS(t *testing.T) {
	t.Helper()
	cmd := exec.Command("/bin/true")
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	if err := cmd.Run(); err != nil {
		missing(t, "cannot create a user namespace: %v", err)
	}
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		missing(t, "this test runs nbs as root and as another user; it needs root")
	}
}

// testUser is the unprivileged user the tests run nbs as.
type testUser struct {
	name     string
	uid, gid int
	home     string
}

func unprivileged(t *testing.T) *testUser {
	t.Helper()
	requireRoot(t)
	name := os.Getenv("NBS_TEST_USER")
	if name == "" {
		name = "nbs-test"
	}
	u, err := user.Lookup(name)
	if err != nil {
		missing(t, "test user %s: %v", name, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if _, err := exec.LookPath("setpriv"); err != nil {
		missing(t, "setpriv not found (util-linux)")
	}
	return &testUser{name: name, uid: uid, gid: gid, home: u.HomeDir}
}

var nonceCounter atomic.Int64

var keptRE = regexp.MustCompile(`keeping build directory ['"]([^'"]+)['"]`)

// buildFailure builds attr of testdata/e2e with nix-build --keep-failed,
// expects it to fail and returns the kept directory.
func buildFailure(t *testing.T, attr string) string {
	t.Helper()
	requireNix(t)
	nonce := fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), nonceCounter.Add(1))
	cmd := exec.Command("nix-build", "--no-out-link", "--keep-failed", e2eNix(t), "-A", attr, "--argstr", "nonce", nonce)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	if err == nil {
		t.Fatalf("nix-build -A %s succeeded; it should fail", attr)
	}
	m := keptRE.FindStringSubmatch(stderr.String())
	if m == nil {
		t.Fatalf("nix-build -A %s: no kept build directory in its log (is sandbox = true set?):\n%s", attr, stderr.String())
	}
	dir := m[1]
	t.Cleanup(func() {
		if os.Geteuid() == 0 {
			removeKept(dir)
		}
	})
	return dir
}

// removeKept removes a kept build directory and, where newer Nix nests it
// (/nix/var/nix/builds/nix-PID-N/build), the directory holding it once
// that is empty.
func removeKept(dir string) {
	os.RemoveAll(dir)
	if filepath.Base(dir) == "build" && strings.HasPrefix(filepath.Base(filepath.Dir(dir)), "nix-") {
		os.Remove(filepath.Dir(dir))
	}
}

func e2eNix(t *testing.T) string {
	p, err := filepath.Abs("../../testdata/e2e")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// result is one run of nbs.
type result struct {
	stdout, stderr string
	code           int
	tmp            string // the TMPDIR nbs ran with
}

// runNBS runs nbs as u (nil: as the test process) with a private TMPDIR
// and returns what it printed. extraEnv adds to a minimal environment.
func runNBS(t *testing.T, u *testUser, extraEnv []string, args ...string) result {
	t.Helper()
	return runNBSUnder(t, nil, u, extraEnv, args...)
}

// runNBSUnder is runNBS with nbs started by the command wrap (nil: none),
// e.g. testdata/restrict.
func runNBSUnder(t *testing.T, wrap []string, u *testUser, extraEnv []string, args ...string) result {
	t.Helper()
	tmp := privateTmp(t)
	argv := append(append(append([]string{}, wrap...), nbsBin), args...)
	home := "/nonexistent"
	if u != nil {
		// The user's own groups: Debian lets only nix-users reach the
		// nix-daemon.
		argv = append(append(append([]string{}, wrap...), "setpriv", "--reuid="+strconv.Itoa(u.uid), "--regid="+strconv.Itoa(u.gid), "--init-groups", "--", nbsBin), args...)
		home = u.home
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append([]string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + home}, entryEnv()...), extraEnv...)
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

// assertCleanTmp checks that nbs left nothing in its TMPDIR.
func assertCleanTmp(t *testing.T, r result) {
	t.Helper()
	entries, _ := os.ReadDir(r.tmp)
	if len(entries) > 0 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("nbs left %s in TMPDIR", strings.Join(names, ", "))
	}
}

// treeSum is a listing of dir with every entry's type, mode, owner,
// size, mtime, link target and content hash: equal sums mean unchanged.
func treeSum(t *testing.T, dir string) string {
	t.Helper()
	out, err := exec.Command("find", dir, "-printf", "%P %y %m %U:%G %s %T@ %l\n").Output()
	if err != nil {
		t.Fatalf("list %s: %v", dir, err)
	}
	sums, _ := exec.Command("sh", "-c", "cd \"$1\" && find . -type f -exec sha256sum {} + | sort", "sh", dir).Output()
	lines := strings.Split(string(out), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "\n") + string(sums)
}

// The escape helper (testdata/escape) tries, inside a sandbox, to break
// out; it reports one record per check (testdata/escape/report). The
// containment tests of nbs shell and nbs attach read them back here.

// escBuild builds the escape helper (static) as out.
func escBuild(t *testing.T, out string) {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	cmd := exec.Command(goBin, "build", "-o", out, "./testdata/escape")
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the escape helper: %v\n%s", err, out)
	}
	os.Chmod(out, 0o755)
}

// escFileID is a file's major:minor:inode, as the helper reports the
// executables and mappings it sees: bind mounts keep the device.
func escFileID(t *testing.T, path string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%d:%d:%d", unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
}

// escResults are the helper's records, read at the sandbox's own level
// or, through nested, at that of its nested user namespace.
type escResults struct {
	rs     report.Results
	nested bool
}

// escParse reads the helper's output; a garbled or repeated record, or
// a watchdog's, is an error.
func escParse(t *testing.T, out string) escResults {
	t.Helper()
	rs, errs := report.Parse(out)
	for _, err := range errs {
		t.Error(err)
	}
	for k := range rs {
		if k.Check == report.Watchdog {
			t.Errorf("the helper hung and its watchdog ended it (%s)", k)
		}
	}
	return escResults{rs: rs}
}

// String lists the records, one `check arg = result` a line.
func (e escResults) String() string {
	var ls []string
	for _, r := range e.rs {
		ls = append(ls, r.String())
	}
	sort.Strings(ls)
	return strings.Join(ls, "\n")
}

// inNested reads the records of the nested user namespace.
func (e escResults) inNested() escResults {
	e.nested = true
	return e
}

func (e escResults) key(c report.Check, arg string) report.Key {
	return report.Key{Check: c, Arg: arg, Nested: e.nested}
}

// get is c's record on arg; ok is false where it was not made.
func (e escResults) get(c report.Check, arg string) (r report.Record, ok bool) {
	r, ok = e.rs[e.key(c, arg)]
	return r, ok
}

// result is c's result on arg in a word (report.Record.Result), "" where
// it was not made.
func (e escResults) result(c report.Check, arg string) string {
	r, _ := e.get(c, arg)
	return r.Result()
}

// args lists what c was applied to.
func (e escResults) args(c report.Check) []string { return e.rs.Args(c, e.nested) }

// want asserts that c was made on arg with the result want.
func (e escResults) want(t *testing.T, c report.Check, arg, want string) {
	t.Helper()
	k := e.key(c, arg)
	r, ok := e.rs[k]
	switch {
	case !ok:
		t.Errorf("%s: no result (the attempt was not made)", k)
	case r.Result() != want:
		t.Errorf("%s = %q, want %q", k, r.Result(), want)
	}
}

// blocked asserts that the attempt c on arg was made and failed with one
// of the errnos (any errno when none is given).
func (e escResults) blocked(t *testing.T, c report.Check, arg string, errnos ...string) {
	t.Helper()
	escBlocked(t, e.rs, e.key(c, arg), errnos...)
}

func escBlocked(t *testing.T, rs report.Results, k report.Key, errnos ...string) {
	t.Helper()
	r, ok := rs[k]
	switch {
	case !ok:
		t.Errorf("%s: no result (the attempt was not made)", k)
	case r.Outcome == report.NotTried:
		t.Errorf("%s: %s", k, r.Result())
	case r.Outcome != report.Errno:
		t.Errorf("ESCAPE: %s succeeded: %s", k, r.Result())
	case len(errnos) > 0 && !slices.Contains(errnos, r.Errno):
		t.Errorf("%s = %s, want %s", k, r.Errno, strings.Join(errnos, " or "))
	}
}

// escNoPrivileges: the helper ran as uid 1000 with no_new_privs, Nix's
// seccomp filter and no capabilities, and could set no set-id bit.
func escNoPrivileges(t *testing.T, e escResults) {
	t.Helper()
	e.want(t, report.Status, "NoNewPrivs", "1")
	e.want(t, report.Status, "Seccomp", "2")
	for _, c := range []string{"CapInh", "CapPrm", "CapEff", "CapAmb"} {
		e.want(t, report.Status, c, "0000000000000000")
	}
	e.want(t, report.Status, "Uid", "1000 1000 1000 1000")
	for _, c := range []struct {
		check report.Check
		mode  string
	}{{report.Chmod, "04755"}, {report.Chmod, "02755"}, {report.Fchmod, "04755"}, {report.Fchmodat, "04755"},
		{report.ChmodSyscall, "04755"}, {report.Fchmodat2, "04755"}} {
		// Nix's seccomp filter fails them with EPERM. fchmodat2
		// (Linux 6.6) is the same call by another number: Nix
		// filters it from 2.22 (and 2.18.3) on, Nix 2.8 does not
		// (a real Nix 2.8 build sets 04755 with it). No build
		// needs a set-id bit: nbs must refuse it whatever the
		// host's Nix version.
		e.blocked(t, c.check, c.mode, "EPERM", "ENOSYS")
	}
}

// escNoXattrs: Nix's filter fails the xattr calls with ENOTSUP;
// setxattrat (Linux 6.13) is newer than Nix's list and must fail the
// same way.
func escNoXattrs(t *testing.T, e escResults) {
	t.Helper()
	for _, name := range []string{report.XattrUser, report.XattrCapability} {
		for _, c := range []report.Check{report.Setxattr, report.Lsetxattr, report.Fsetxattr, report.Setxattrat, report.SetxattratFD} {
			e.blocked(t, c, name, "ENOTSUP")
		}
	}
}

// escHostPaths are host paths that the sandbox must not show.
var escHostPaths = []string{"/home", "/root", "/etc/shadow", "/var", "/usr", "/sys", "/run", "/nix/var", "/etc/nix"}

// escNoHostProcesses: the host pids of nbs and of the test, which the
// helper was told, are out of its reach.
func escNoHostProcesses(t *testing.T, e escResults) {
	t.Helper()
	for _, who := range []string{"nbs", "test"} {
		e.blocked(t, report.HostPidKill0, who, "ESRCH")
		e.blocked(t, report.HostPidPtrace, who, "ESRCH")
		e.blocked(t, report.HostPidPidfd, who, "ESRCH")
		e.blocked(t, report.HostPidProc, who, "ENOENT")
	}
}

// escNotNBS checks every process the helper saw: none runs the nbs
// binary (nbsID, escFileID's), and none's executable could be opened for
// writing through /proc/PID/exe. It returns their pids.
func escNotNBS(t *testing.T, e escResults, nbsID string) []string {
	t.Helper()
	pids := e.args(report.ProcExe)
	for _, pid := range pids {
		exe := e.result(report.ProcExe, pid)
		if f := strings.Fields(exe); len(f) == 0 || f[len(f)-1] == nbsID {
			t.Errorf("ESCAPE: process %s runs the nbs binary (%s): %s", pid, nbsID, exe)
		}
		for _, c := range []report.Check{report.ProcExeWrite, report.ProcExeRdwr, report.ProcExeAppend} {
			e.blocked(t, c, pid)
		}
	}
	return pids
}
