//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/testdata/escape/report"
	"golang.org/x/sys/unix"
)

// hungBuild is a build of testdata/e2e's hang, running in the background
// in Nix's sandbox until something inside creates /build/release.
type hungBuild struct {
	drv, name string
	cmd       *exec.Cmd
	done      chan struct{} // closed when nix-build has exited
	err       error         // nix-build's exit, after done
	mu        sync.Mutex
	log       bytes.Buffer
}

func (h *hungBuild) stderr() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.log.String()
}

// startHung starts the hanging build (as u through the daemon; nil: as
// root, without it) and returns once its builder says it hangs.
func startHung(t *testing.T, u *testUser) *hungBuild {
	t.Helper()
	requireNix(t)
	nonce := fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), nonceCounter.Add(1))
	out, err := exec.Command("nix-instantiate", e2eNix(t), "-A", "hang", "--argstr", "nonce", nonce).Output()
	if err != nil {
		t.Fatalf("nix-instantiate -A hang: %v", err)
	}
	drv := strings.TrimSpace(string(out))
	h := &hungBuild{drv: drv, name: strings.TrimSuffix(path.Base(drv)[33:], ".drv"), done: make(chan struct{})}
	h.cmd = exec.Command("nix-build", "--no-out-link", drv)
	if u != nil {
		h.cmd = exec.Command("setpriv", "--reuid="+strconv.Itoa(u.uid), "--regid="+strconv.Itoa(u.gid), "--init-groups", "--", "nix-build", "--no-out-link", drv)
		h.cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + u.home}
	}
	pr, pw := io.Pipe()
	h.cmd.Stderr = pw
	if err := h.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	hanging := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			h.mu.Lock()
			h.log.WriteString(sc.Text() + "\n")
			h.mu.Unlock()
			if strings.Contains(sc.Text(), "nbs-e2e: hanging now") {
				once.Do(func() { close(hanging) })
			}
		}
	}()
	go func() {
		h.err = h.cmd.Wait()
		pw.Close()
		close(h.done)
	}()
	t.Cleanup(func() {
		select {
		case <-h.done:
		default:
			// Release it the way the test would have.
			runNBS(t, nil, nil, "attach", h.name, "touch", "/build/release")
			select {
			case <-h.done:
			case <-time.After(5 * time.Minute):
				h.cmd.Process.Kill()
			}
		}
	})
	select {
	case <-hanging:
	case <-h.done:
		t.Fatalf("nix-build -A hang ended before hanging: %v\n%s", h.err, h.stderr())
	case <-time.After(5 * time.Minute):
		t.Fatalf("nix-build -A hang did not start hanging in 5 minutes:\n%s", h.stderr())
	}
	return h
}

func (h *hungBuild) running() bool {
	select {
	case <-h.done:
		return false
	default:
		return true
	}
}

// TestAttach enters a hung build while it hangs: the live /build, the
// builder's environment and directory, its user, host name and
// processes; the build runs on afterwards and ends as it would have.
// The build is root's own (nix-build without the daemon) or an ordinary
// user's, through the daemon.
func TestAttach(t *testing.T) {
	requireRoot(t)
	requireUserNS(t)
	t.Run("root", func(t *testing.T) { testAttach(t, startHung(t, nil)) })
	t.Run("daemon", func(t *testing.T) { testAttach(t, startHung(t, unprivileged(t))) })
}

func testAttach(t *testing.T, h *hungBuild) {

	script := `
echo "marker=$(cat /build/marker)"
echo "attr=$hangAttr"
echo "cwd=$(pwd)"
echo "uid=$(id -u) gid=$(id -g)"
echo "host=$(hostname)"
echo "pid1=$(tr '\0\n' '  ' < /proc/1/cmdline)"
echo "nnp=$(grep NoNewPrivs /proc/self/status | tr -d ' \t')"
echo "seccomp=$(grep '^Seccomp:' /proc/self/status | tr -d ' \t')"
echo "capeff=$(grep CapEff /proc/self/status | tr -d ' \t')"
echo "userns=$(readlink /proc/self/ns/user) $(readlink /proc/1/ns/user)"
echo "mntns=$(readlink /proc/self/ns/mnt) $(readlink /proc/1/ns/mnt)"
echo "netns=$(readlink /proc/self/ns/net) $(readlink /proc/1/ns/net)"
exit 42`
	r := runNBS(t, nil, nil, "attach", h.name, "sh", "-c", script)
	if r.code != 42 {
		t.Fatalf("nbs attach %s sh -c …: exit %d, want 42 (the command's)\nstdout:\n%s\nstderr:\n%s", h.name, r.code, r.stdout, r.stderr)
	}
	got := map[string]string{}
	for _, line := range strings.Split(r.stdout, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	for k, want := range map[string]string{
		"marker":  "written before hanging",
		"attr":    "from-the-derivation",
		"cwd":     "/build/work",
		"uid":     "1000 gid=100",
		"host":    "localhost",
		"nnp":     "NoNewPrivs:1",
		"seccomp": "Seccomp:2",
		"capeff":  "CapEff:0000000000000000",
	} {
		if got[k] != want {
			t.Errorf("%s = %q, want %q\nstdout:\n%s\nstderr:\n%s", k, got[k], want, r.stdout, r.stderr)
		}
	}
	if !strings.Contains(got["pid1"], "nbs-e2e: hanging now") {
		t.Errorf("PID 1 is %q, want the builder (its script)", got["pid1"])
	}
	for _, ns := range []string{"userns", "mntns", "netns"} {
		f := strings.Fields(got[ns])
		if len(f) != 2 || f[0] != f[1] {
			t.Errorf("%s: attached and builder differ: %q", ns, got[ns])
		}
	}
	if !h.running() {
		t.Fatalf("the build ended while attached:\n%s", h.stderr())
	}

	t.Run("nofile", func(t *testing.T) {
		// The soft RLIMIT_NOFILE nbs was started with, not the one Go
		// raises for nbs itself (see TestShellNofile).
		var lim unix.Rlimit
		if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil || lim.Max < 514 {
			t.Skipf("hard RLIMIT_NOFILE %d (%v) leaves no soft limit for Go to raise", lim.Max, err)
		}
		r := runNBSUnder(t, []string{"prlimit", "--nofile=512:", "--"}, nil, nil, "attach", h.name, "sh", "-c", "ulimit -Sn")
		if r.code != 0 || r.stdout != "512\n" {
			t.Errorf("nbs attach %s sh -c 'ulimit -Sn' under a soft limit of 512: exit %d, stdout %q, stderr %q", h.name, r.code, r.stdout, r.stderr)
		}
	})
	t.Run("by drv path", func(t *testing.T) {
		r := runNBS(t, nil, nil, "attach", h.drv, "cat", "/build/marker")
		if r.code != 0 || r.stdout != "written before hanging\n" {
			t.Errorf("nbs attach %s cat /build/marker: exit %d, stdout %q, stderr %q", h.drv, r.code, r.stdout, r.stderr)
		}
	})
	t.Run("by pid", func(t *testing.T) {
		pid := builderPID(t, h.name)
		r := runNBS(t, nil, nil, "attach", strconv.Itoa(pid), "cat", "/build/marker")
		if r.code != 0 || r.stdout != "written before hanging\n" {
			t.Errorf("nbs attach %d cat /build/marker: exit %d, stdout %q, stderr %q", pid, r.code, r.stdout, r.stderr)
		}
	})
	t.Run("with", func(t *testing.T) {
		extra := builtPath(t, "extraTool")
		r := runNBS(t, nil, nil, "attach", "--with", extra, h.name, "sh", "-c", "nbs-extra-tool && cat /build/marker")
		if r.code != 0 || r.stdout != "extra tool here\nwritten before hanging\n" {
			t.Errorf("attach --with %s: exit %d, stdout %q, stderr %q", extra, r.code, r.stdout, r.stderr)
		}
		// The build's own view (PID 1's root) has no such path.
		r = runNBS(t, nil, nil, "attach", h.name, "sh", "-c", "ls /proc/1/root/nix/store/ /nix/store/")
		if r.code != 0 || strings.Contains(r.stdout, path.Base(extra)) {
			t.Errorf("the build sees the --with tool: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
	})
	t.Run("unknown name", func(t *testing.T) {
		r := runNBS(t, nil, nil, "attach", "nbs-e2e-no-such-build", "true")
		if r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "no running build nbs-e2e-no-such-build") || !strings.Contains(r.stderr, h.name) {
			t.Errorf("unknown name: exit %d, stderr %q; want one line naming it and what runs", r.code, r.stderr)
		}
	})
	t.Run("unprivileged", func(t *testing.T) {
		u := unprivileged(t)
		r := runNBS(t, u, nil, "attach", h.name, "true")
		if r.code == 0 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "needs root") || !strings.Contains(r.stderr, "sudo nbs attach "+h.name) {
			t.Errorf("unprivileged: exit %d, stderr %q; want one line saying sudo is needed", r.code, r.stderr)
		}
	})
	t.Run("list", func(t *testing.T) {
		r := runNBS(t, nil, nil, "list")
		if !strings.Contains(r.stdout, h.name+" (running)") || !strings.Contains(r.stdout, h.drv) {
			t.Errorf("nbs list does not show %s as running:\n%s%s", h.name, r.stdout, r.stderr)
		}
	})
	if !h.running() {
		t.Fatalf("the build ended while attached:\n%s", h.stderr())
	}

	// The build ends while attached: the command lets it go and waits.
	r = runNBS(t, nil, nil, "attach", h.name, "sh", "-c", "touch /build/release; sleep 600")
	t.Logf("the build ended while attached: exit %d, stderr %q", r.code, r.stderr)
	if r.code == 0 || !strings.Contains(r.stderr, "ended while attached") {
		t.Errorf("build ending while attached: exit %d, stderr %q; want a note that it ended", r.code, r.stderr)
	}
	select {
	case <-h.done:
	case <-time.After(5 * time.Minute):
		t.Fatalf("the build did not end in 5 minutes after its release")
	}
	if h.err == nil || !strings.Contains(h.stderr(), "nbs-e2e: the hung build ends") || !strings.Contains(h.stderr(), "exit code 11") {
		t.Errorf("the build did not end as it would have (exit 11 after its release): %v\n%s", h.err, h.stderr())
	}
}

// builderPID is the PID nbs list shows for the running build name.
func builderPID(t *testing.T, name string) int {
	t.Helper()
	r := runNBS(t, nil, nil, "list")
	for _, line := range strings.Split(r.stdout, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[2] == name {
			if pid, err := strconv.Atoi(f[1]); err == nil {
				return pid
			}
		}
	}
	t.Fatalf("nbs list shows no running %s:\n%s", name, r.stdout)
	return 0
}

// TestAttachContainment runs the containment helper (testdata/escape)
// inside a live build through nbs attach: what attach itself brings must
// hold there as in nbs shell: no privileges, nbs's seccomp filter, no
// descriptor, process or binary of nbs or the host reachable, and a
// terminal of its own that types nothing into the user's. (What Nix's
// own sandbox is, its store mounts and the like, is Nix's: not checked
// here.)
func TestAttachContainment(t *testing.T) {
	requireRoot(t)
	requireUserNS(t)
	h := startHung(t, nil)
	pid := builderPID(t, h.name)
	// The test puts the helper into the build's /build, as a user
	// could; the build never looks at it.
	escBuild(t, fmt.Sprintf("/proc/%d/root/build/escape", pid))
	nbsID := escFileID(t, nbsBin)
	r := runner{name: "attach"}

	t.Run("attempts", func(t *testing.T) {
		tcp, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer tcp.Close()
		nonce := fmt.Sprintf("%d-%d", os.Getpid(), nonceCounter.Add(1))
		marker := "nbs-escape-marker-" + nonce
		if err := os.WriteFile("/tmp/"+marker, []byte("host\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove("/tmp/" + marker)
		cmd, _ := escCommand(t, r, "attach", h.name, "/build/escape", "probe",
			"-port", strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port), "-marker", marker, "-nonce", nonce)
		stdout, stderr, _, code := escProbe(t, cmd)
		if code != 0 || stdout.Len() == 0 {
			t.Fatalf("nbs attach %s /build/escape probe: status %d\nstdout:\n%s\nstderr:\n%s", h.name, code, stdout.String(), stderr.String())
		}
		e := escParse(t, stdout.String())
		if testing.Verbose() {
			t.Logf("the helper's results:\n%s", e)
		}
		escNoPrivileges(t, e)
		escNoXattrs(t, e)
		e.blocked(t, report.Setresuid, "")
		e.blocked(t, report.Chroot, "", "EPERM")
		e.want(t, report.FDs, "", "0 1 2")
		for fd := 0; fd <= 2; fd++ {
			e.want(t, report.TTY, strconv.Itoa(fd), "not a terminal")
		}
		e.want(t, report.TTYInjected, "", "0")
		escNoHostProcesses(t, e)
		escNotNBS(t, e, nbsID)
		for _, p := range append(escHostPaths, "/tmp/"+marker) {
			e.blocked(t, report.Host, p, "ENOENT")
		}
		e.want(t, report.NetInterfaces, "", "lo")
		e.blocked(t, report.NetTCP, fmt.Sprintf("127.0.0.1:%d", tcp.Addr().(*net.TCPAddr).Port), "ECONNREFUSED")
	})
	t.Run("tiocsti", func(t *testing.T) { escTIOCSTI(t, r, "attach", h.name) })
	if !h.running() {
		t.Fatalf("the build ended while attached:\n%s", h.stderr())
	}
}
