//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/sandbox"
	"golang.org/x/sys/unix"

	"github.com/nix-build-shell/nbs/testdata/escape/report"
)

// TestContainment is issue 5's containment proof. A helper
// (testdata/escape) runs inside `nbs shell` on a copy of a directory that
// real nix-build kept and tries to break out: write to the store, reach
// the network, inject keystrokes into the terminal nbs runs in, write
// the nbs binary through /proc/PID/exe, see host files, gain privileges
// (set-id bits, remounting the store read-write, also from a nested user
// namespace), and signal or trace processes outside. It reports one
// record per check (testdata/escape/report); every attempt must fail. The test also
// looks from the host side: the store paths are intact, the listeners
// got nothing, the terminal's input queue is empty, the canary process
// lives, nothing lingers. It runs for each way of running nbs, root
// included.
func TestContainment(t *testing.T) {
	rs := runners(t)
	dir := escCopy(t, buildFailure(t, "fail"))
	// Symlinks out of the kept directory and a fifo, for the view's
	// checks (escView).
	links := escCopy(t, buildFailure(t, "failLinks"))
	nbsID := escFileID(t, nbsBin)
	// The caller's own kept directory, which an unprivileged overlay
	// can show.
	own := map[string]string{}
	for _, r := range rs {
		t.Run(r.name, func(t *testing.T) {
			for _, mode := range entryModes {
				if mode == sandbox.EntryFUSE && r.user == nil {
					continue // the unprivileged view; root has the kernel's
				}
				d, l := dir, links
				if mode == sandbox.EntryOverlay && r.user != nil {
					if own[r.name] == "" {
						own[r.name] = escCopy(t, dir)
						chownTree(t, own[r.name], r.user.uid, r.user.gid)
						own[r.name+" links"] = escCopy(t, links)
						chownTree(t, own[r.name+" links"], r.user.uid, r.user.gid)
					}
					d, l = own[r.name], own[r.name+" links"]
				}
				r := r
				r.env = append(append([]string(nil), r.env...), "NBS_ENTRY_MODE="+mode)
				t.Run(mode, func(t *testing.T) {
					if mode == sandbox.EntryFUSE {
						requireFUSE(t, r.user)
					}
					before, beforeLinks := treeSum(t, d), treeSum(t, l)
					t.Run("attempts", func(t *testing.T) { escAttempts(t, r, d, nbsID) })
					t.Run("kill", func(t *testing.T) { escKill(t, r, d) })
					t.Run("tiocsti", func(t *testing.T) { escTIOCSTI(t, r, "shell", d) })
					t.Run("view", func(t *testing.T) { escView(t, r, l, mode) })
					t.Run("device", func(t *testing.T) { escDevice(t, r, l, mode) })
					if after := treeSum(t, d); after != before {
						t.Errorf("ESCAPE: the kept directory changed:\n%s\nwas\n%s", after, before)
					}
					if after := treeSum(t, l); after != beforeLinks {
						t.Errorf("ESCAPE: the kept directory changed:\n%s\nwas\n%s", after, beforeLinks)
					}
				})
			}
		})
	}
}

// entryModes are the ways /build can be made; the containment tests run
// in each.
var entryModes = []string{sandbox.EntryCopy, sandbox.EntryOverlay, sandbox.EntryFUSE}

// requireFUSE: u can have the FUSE view, fuse-overlayfs is installed
// and u may open /dev/fuse (.ci/setup-host sees to both).
func requireFUSE(t *testing.T, u *testUser) {
	t.Helper()
	if _, err := exec.LookPath("fuse-overlayfs"); err != nil {
		missing(t, "fuse-overlayfs not found (Debian package fuse-overlayfs; .ci/setup-host installs it)")
	}
	cmd := exec.Command("setpriv", "--reuid="+strconv.Itoa(u.uid), "--regid="+strconv.Itoa(u.gid), "--init-groups", "--", "sh", "-c", ": <> /dev/fuse")
	if out, err := cmd.CombinedOutput(); err != nil {
		missing(t, "%s cannot open /dev/fuse (%v %s; .ci/setup-host makes it 0666)", u.name, err, out)
	}
}

func chownTree(t *testing.T, dir string, uid, gid int) {
	t.Helper()
	if out, err := exec.Command("chown", "-R", fmt.Sprintf("%d:%d", uid, gid), dir).CombinedOutput(); err != nil {
		t.Fatalf("chown %s: %v %s", dir, err, out)
	}
}

// escCopy makes a private copy of the kept directory, readable by the
// test user, with the escape helper in it: /build/escape inside.
func escCopy(t *testing.T, kept string) string {
	t.Helper()
	base, err := os.MkdirTemp("", "nbs-escape-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	dir := filepath.Join(base, "kept")
	if out, err := exec.Command("cp", "-a", kept, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v\n%s", kept, err, out)
	}
	escBuild(t, filepath.Join(dir, "escape"))
	// As the build would have left it: the kernel's overlay is taken
	// only for a directory whose entries all belong to its owner.
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err == nil {
		os.Lchown(filepath.Join(dir, "escape"), int(st.Uid), int(st.Gid))
	}
	return dir
}

// escCommand is nbs as r runs it (see runNBS), with a private TMPDIR, a
// time limit, and stdio left to the caller.
func escCommand(t *testing.T, r runner, args ...string) (*exec.Cmd, string) {
	t.Helper()
	tmp := privateTmp(t)
	argv := append([]string{nbsBin}, args...)
	home := "/nonexistent"
	if r.user != nil {
		argv = append([]string{"setpriv", "--reuid=" + strconv.Itoa(r.user.uid), "--regid=" + strconv.Itoa(r.user.gid), "--init-groups", "--"}, argv...)
		home = r.user.home
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + home}, r.env...)
	return cmd, tmp
}

func escStatus(t *testing.T, err error) int {
	t.Helper()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		t.Fatalf("run nbs: %v", err)
	}
	return 0
}

// escProbe runs the helper's probe (cmd) and tells it the host pids of
// the test and of nbs on stdin, as the attempts on host processes need.
func escProbe(t *testing.T, cmd *exec.Cmd) (stdout, stderr *bytes.Buffer, nbsPid, code int) {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// setpriv execs nbs: this is nbs's own pid in every case.
	nbsPid = cmd.Process.Pid
	fmt.Fprintf(stdin, "test=%d nbs=%d\n", os.Getpid(), nbsPid)
	stdin.Close()
	return stdout, stderr, nbsPid, escStatus(t, cmd.Wait())
}

const escRoot = "bin build dev etc nix proc tmp"

// escAttempts runs every attempt but kill(-1) and the terminal ones on
// a real terminal (stdio are pipes here), then checks the results from
// inside and outside.
func escAttempts(t *testing.T, r runner, dir, nbsID string) {
	nonce := fmt.Sprintf("%d-%d", os.Getpid(), nonceCounter.Add(1))
	tcp, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	udp, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	abstract := "nbs-escape-" + nonce
	ux, err := net.Listen("unix", "@"+abstract)
	if err != nil {
		t.Fatal(err)
	}
	defer ux.Close()
	marker := "nbs-escape-marker-" + nonce
	if err := os.WriteFile("/tmp/"+marker, []byte("host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove("/tmp/" + marker)
	canaryDir, err := os.MkdirTemp("", "nbs-escape-canary-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(canaryDir)
	canary := filepath.Join(canaryDir, "file")
	os.WriteFile(canary, []byte("keep me\n"), 0o644)

	// PID 1 is the shell, so that /proc/1/exe is a store path.
	cmd, tmp := escCommand(t, r, "shell", dir, "/bin/sh", "-c", `/build/escape probe "$@"; exit $?`, "sh",
		"-port", strconv.Itoa(tcp.Addr().(*net.TCPAddr).Port),
		"-udp", strconv.Itoa(udp.LocalAddr().(*net.UDPAddr).Port),
		"-abstract", abstract, "-marker", marker, "-canary", canary, "-nonce", nonce)
	stdout, stderr, nbsPid, code := escProbe(t, cmd)
	if code != 0 || stdout.Len() == 0 {
		t.Fatalf("nbs shell %s /build/escape probe: status %d\nstdout:\n%s\nstderr:\n%s", dir, code, stdout.String(), stderr.String())
	}
	e := escParse(t, stdout.String())
	if testing.Verbose() {
		t.Logf("the helper's results:\n%s", e)
	}

	t.Run("every attempt failed", func(t *testing.T) {
		n := 0
		for k, r := range e.rs {
			if !r.Check.Fact() {
				n++
				escBlocked(t, e.rs, k)
			}
		}
		if n < 50 {
			t.Errorf("only %d attempts were made", n)
		}
	})

	nested := e.inNested()
	t.Run("store", func(t *testing.T) {
		entries := strings.Fields(e.result(report.StoreEntries, ""))
		if len(entries) == 0 {
			t.Fatalf("no store paths inside: %q", e.result(report.StoreEntries, ""))
		}
		for _, n := range entries {
			e.want(t, report.StoreMount, n, "ro")
			if w := e.result(report.StoreWritable, n); !strings.HasPrefix(w, "none of") {
				t.Errorf("ESCAPE: writable in /nix/store/%s: %s", n, w)
			}
			e.blocked(t, report.StoreChmod, n)
			e.blocked(t, report.StoreRename, n)
			e.blocked(t, report.Remount, "/nix/store/"+n, "EPERM")
			e.blocked(t, report.MountSetattr, "/nix/store/"+n, "EPERM")
			// Also as root of a nested user namespace: the mount is
			// locked read-only.
			nested.blocked(t, report.Remount, "/nix/store/"+n, "EPERM")
			nested.blocked(t, report.MountSetattr, "/nix/store/"+n, "EPERM")
			nested.blocked(t, report.Umount, "/nix/store/"+n)
			// The host's copy is what the store's database says.
			if out, err := exec.Command("nix-store", "--verify-path", "/nix/store/"+n).CombinedOutput(); err != nil {
				t.Errorf("ESCAPE: nix-store --verify-path /nix/store/%s: %v\n%s", n, err, out)
			}
		}
		e.blocked(t, report.Remount, "/", "EPERM")
		e.blocked(t, report.MountSetattr, "/", "EPERM")
		e.blocked(t, report.Remount, "/bin/sh", "EPERM")
		nested.blocked(t, report.Remount, "/", "EPERM")
		nested.blocked(t, report.Remount, "/bin/sh", "EPERM")
		e.want(t, report.NestedUserns, "", "ok")
		nested.want(t, report.Status, "Uid", "0 0 0 0")
		if c := nested.result(report.Status, "CapEff"); c == "" || strings.Trim(c, "0") == "" {
			t.Errorf("nested CapEff = %q: the nested attempts ran without capabilities", c)
		}
		// The store dir is private: made inside, absent outside.
		e.want(t, report.StoreDirMkdir, "", "ok")
		for _, p := range []string{"/nix/store/nbs-escape-" + nonce, "/nix/store/nbs-escape-link-" + nonce} {
			if _, err := os.Lstat(p); err == nil {
				t.Errorf("ESCAPE: %s, made in the sandbox, is in the host's store", p)
			}
		}
		e.want(t, report.Ls, "/nix", "store")
	})

	t.Run("network", func(t *testing.T) {
		e.want(t, report.NetInterfaces, "", "lo")
		e.want(t, report.NetRoutesV4, "", "0")
		e.want(t, report.NetRoutesV6, "", "0")
		e.want(t, report.IPRoute, "", "")
		port := tcp.Addr().(*net.TCPAddr).Port
		e.blocked(t, report.NetTCP, fmt.Sprintf("127.0.0.1:%d", port), "ECONNREFUSED")
		e.blocked(t, report.NetTCP, fmt.Sprintf("[::1]:%d", port), "ECONNREFUSED")
		e.blocked(t, report.NetTCP, report.TestNet, "ENETUNREACH")
		e.want(t, report.NetTCPImmediate, report.TestNet, "true")
		e.blocked(t, report.NetUDP, report.TestNet, "ENETUNREACH")
		e.blocked(t, report.NetUnix, "@"+abstract, "ECONNREFUSED")
		e.blocked(t, report.NetUnix, report.DaemonSocket, "ENOENT")
		// Nothing arrived at the host's listeners.
		tcp.(*net.TCPListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
		if c, err := tcp.Accept(); err == nil {
			c.Close()
			t.Error("ESCAPE: the host's TCP listener on 127.0.0.1 got a connection")
		}
		udp.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if n, _, err := udp.ReadFrom(make([]byte, 64)); err == nil {
			t.Errorf("ESCAPE: the host's UDP socket on 127.0.0.1 got %d bytes", n)
		}
		ux.(*net.UnixListener).SetDeadline(time.Now().Add(200 * time.Millisecond))
		if c, err := ux.Accept(); err == nil {
			c.Close()
			t.Error("ESCAPE: the host's abstract unix socket got a connection")
		}
	})

	t.Run("terminal", func(t *testing.T) {
		// Pipes as stdio, no controlling terminal.
		for fd := 0; fd <= 2; fd++ {
			e.want(t, report.TTY, strconv.Itoa(fd), "not a terminal")
			e.blocked(t, report.TTYInject, strconv.Itoa(fd), "ENOTTY")
		}
		e.blocked(t, report.TTYInject, "/dev/tty", "ENXIO")
		e.want(t, report.TTYInjected, "", "0")
		// /dev/ptmx is a character device (a bind of the sandbox's
		// pts/ptmx) whose ptys come from the sandbox's own devpts
		// instance, not from the host's.
		e.want(t, report.PtmxType, "", "char 5:2")
		e.want(t, report.PtmxInPts, "", "true")
		var host unix.Stat_t
		if err := unix.Stat("/dev/pts", &host); err != nil {
			t.Fatal(err)
		}
		if d := e.result(report.PtmxDevpts, ""); d == fmt.Sprintf("%d:%d", unix.Major(host.Dev), unix.Minor(host.Dev)) {
			t.Errorf("ESCAPE: /dev/ptmx inside allocates in the host's devpts (%s)", d)
		}
	})

	t.Run("nbs binary", func(t *testing.T) {
		pids := escNotNBS(t, e, nbsID)
		if len(pids) == 0 {
			t.Fatal("no process visible")
		}
		for _, pid := range pids {
			if exe := e.result(report.ProcExe, pid); strings.Contains(exe, filepath.Base(filepath.Dir(nbsBin))) {
				t.Errorf("ESCAPE: process %s runs the nbs binary (%s): %s", pid, nbsID, exe)
			}
			if slices.Contains(strings.Fields(e.result(report.ProcMaps, pid)), nbsID) {
				t.Errorf("ESCAPE: process %s maps the nbs binary (%s)", pid, nbsID)
			}
		}
		e.want(t, report.FDs, "", "0 1 2")
	})

	t.Run("host paths", func(t *testing.T) {
		for _, p := range append(escHostPaths, "/proc/1/root/home", "/tmp/"+marker) {
			e.blocked(t, report.Host, p, "ENOENT")
		}
		e.want(t, report.Ls, "/", escRoot)
		e.want(t, report.Ls, "/../../..", escRoot)
		e.want(t, report.Ls, "/tmp", "")
		e.want(t, report.Proc1Root, "", "/")
		e.want(t, report.Ls, "/proc/1/root", escRoot)
		e.want(t, report.Proc1RootIsMe, "", "true")
		nested.want(t, report.ChrootEscape, "", escRoot)
		e.blocked(t, report.HandleFSRoot, "")
		nested.blocked(t, report.HandleFSRoot, "")
		nested.blocked(t, report.HandleTmp, "")
		mounts := e.args(report.Mount)
		if len(mounts) == 0 {
			t.Error("no mounts listed")
		}
		for _, p := range mounts {
			m := e.result(report.Mount, p)
			if !escPlanned(p) {
				t.Errorf("a mount outside the mount plan: %s = %s", p, m)
			}
			if p == "/" || p == "/bin/sh" || strings.HasPrefix(p, "/nix/store/") {
				if f := strings.Fields(m); len(f) < 2 || !strings.HasPrefix(f[1], "ro") {
					t.Errorf("ESCAPE: %s is not read-only: %s", p, m)
				}
			}
		}
	})

	t.Run("privileges", func(t *testing.T) {
		escNoPrivileges(t, e)
		e.want(t, report.TestFileMode, "", "0755")
		// Also for root of a nested user namespace, who could otherwise
		// set a file capability.
		escNoXattrs(t, e)
		escNoXattrs(t, nested)
		e.want(t, report.SetidFiles, "", "none")
		e.blocked(t, report.Setresuid, "")
		e.blocked(t, report.Mknod, "", "EPERM")
		nested.blocked(t, report.Mknod, "", "EPERM")
		e.blocked(t, report.Chroot, "", "EPERM")
	})

	t.Run("processes", func(t *testing.T) {
		visible := strings.Fields(e.result(report.PidsVisible, ""))
		for _, p := range []int{os.Getpid(), nbsPid} {
			if slices.Contains(visible, strconv.Itoa(p)) {
				t.Errorf("host pid %d is visible inside: %v", p, visible)
			}
		}
		e.want(t, report.PPid, "", "1")
		e.want(t, report.HostPidsGiven, "", "nbs test")
		escNoHostProcesses(t, e)
		// ptrace reaches sandbox processes only: the shell and the
		// helper, never nbs.
		traced := e.args(report.Ptrace)
		if len(traced) == 0 {
			t.Error("no ptrace attempt")
		}
		for _, pid := range traced {
			r, _ := e.get(report.Ptrace, pid)
			if r.Outcome == report.Errno {
				continue
			}
			if r.Outcome != report.OK || (r.Detail != "/bin/sh" && r.Detail != "/build/escape") {
				t.Errorf("ESCAPE: %s: traced a process that is not the sandbox's shell or helper", r)
			}
		}
	})

	t.Run("copy removal", func(t *testing.T) {
		e.want(t, report.PlantLinks, "", "ok")
		if b, err := os.ReadFile(canary); err != nil || string(b) != "keep me\n" {
			t.Errorf("ESCAPE: a host file that links in /build and /tmp pointed to is gone or changed after nbs removed the copy: %q, %v", b, err)
		}
		assertCleanTmp(t, result{tmp: tmp})
	})
}

// escPlanned says whether p is a mount point of the sandbox's mount
// plan: the root, /bin/sh, /build, /tmp, /proc, the devices and the
// store paths.
func escPlanned(p string) bool {
	switch p {
	case "/", "/bin/sh", "/build", "/tmp", "/proc", "/nix/store":
		return true
	}
	if dev, ok := strings.CutPrefix(p, "/dev/"); ok {
		return slices.Contains([]string{"full", "null", "random", "tty", "urandom", "zero", "kvm", "ptmx", "pts", "shm"}, dev)
	}
	name, ok := strings.CutPrefix(p, "/nix/store/")
	return ok && name != "" && !strings.Contains(name, "/")
}

// escKill: kill(-1, SIGKILL) from PID 1 and from another sandbox process
// reaches sandbox processes only. A canary process of the same host uid
// as the sandbox survives, nbs exits with the sandbox's status, and the
// process that tried to linger is gone with the sandbox.
func escKill(t *testing.T, r runner, dir string) {
	uids := []int{r.hostUID}
	pool := ""
	if r.buildUsers != nil {
		var u int
		u, pool = escBuildUser(t, r)
		uids = []int{u}
	}
	type canary struct {
		uid  int
		cmd  *exec.Cmd
		done chan struct{}
	}
	var canaries []canary
	var pids []string
	for _, u := range uids {
		c := canary{uid: u, done: make(chan struct{})}
		c.cmd = exec.Command("setpriv", "--reuid="+strconv.Itoa(u), "--regid="+strconv.Itoa(r.hostGID), "--clear-groups", "--", "sleep", "300")
		if err := c.cmd.Start(); err != nil {
			t.Fatalf("start a canary as uid %d: %v", u, err)
		}
		go func() { c.cmd.Wait(); close(c.done) }()
		defer func() { c.cmd.Process.Kill(); <-c.done }()
		canaries = append(canaries, c)
		pids = append(pids, strconv.Itoa(c.cmd.Process.Pid))
	}

	nonce := fmt.Sprintf("%d-%d", os.Getpid(), nonceCounter.Add(1))
	cmd, tmp := escCommand(t, r, "shell", dir, "/build/escape", "kill", "-status", "42",
		"-canary", strings.Join(pids, ","), "-test", strconv.Itoa(os.Getpid()), "-nonce", nonce)
	if pool != "" {
		// nbs locks the private pool, in a mount namespace of its own.
		unshare, err := exec.LookPath("unshare")
		if err != nil {
			missing(t, "unshare (util-linux): %v", err)
		}
		cmd.Args = append([]string{"unshare", "--mount", "--", "sh", "-c", `mount --bind "$0" /nix/var/nix/userpool && exec "$@"`, pool}, cmd.Args...)
		cmd.Path = unshare
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := escStatus(t, cmd.Run())
	e := escParse(t, stdout.String())
	if code != 42 {
		t.Errorf("nbs exited with %d, want the sandbox's 42\nstdout:\n%s\nstderr:\n%s", code, stdout.String(), stderr.String())
	}
	e.want(t, report.Pid, "", "1")
	// The canaries run as the host uid the sandbox runs as.
	var want []string
	for _, u := range uids {
		want = append(want, strconv.Itoa(u))
	}
	if m := e.result(report.UIDMap, ""); len(strings.Fields(m)) != 3 || !slices.Contains(want, strings.Fields(m)[1]) {
		t.Errorf("uid_map = %q: the sandbox's host uid has no canary (%v)", m, want)
	}
	killers := e.args(report.KillAll)
	if len(killers) != 2 {
		t.Errorf("kill -1 was made from pids %v, want PID 1 and a child", killers)
	}
	for _, pid := range killers {
		e.want(t, report.KillAll, pid, "ok")
	}
	// kill(-1) works inside, on the sandbox's own processes.
	e.want(t, report.KilledFromChild, "", "signal: killed, signal: killed")
	e.want(t, report.KilledFromPID1, "", "signal: killed")
	for _, p := range pids {
		e.blocked(t, report.KillHostCanary, p, "ESRCH")
	}
	e.blocked(t, report.KillHostTest, "", "ESRCH")
	e.want(t, report.Linger, "", "ok")
	for _, c := range canaries {
		select {
		case <-c.done:
			t.Errorf("ESCAPE: the canary (host pid %d, uid %d) was killed: %v", c.cmd.Process.Pid, c.uid, c.cmd.ProcessState)
		default:
		}
	}
	if ps := escProcessesWith("linger-" + nonce); len(ps) > 0 {
		t.Errorf("ESCAPE: a sandbox process outlived the sandbox: %v", ps)
	}
	assertCleanTmp(t, result{tmp: tmp})
}

// escBuildUser picks the Nix build user the sandbox of plain root runs as
// in escKill, and a private userpool that makes nbs take it. Nix kills
// every process of a build user when it starts and ends a build with it
// (DerivationGoal's killUser), so a concurrent build would kill the
// canary, which runs as that user. The test holds the user's real lock
// (userpool/UID, flock'ed as Nix's UserLock and nbs take it) from before
// the canary starts until it is checked, so that no build can use it;
// nbs, in its own mount namespace, locks the private pool instead, where
// the test holds every other build user.
func escBuildUser(t *testing.T, r runner) (int, string) {
	t.Helper()
	var uids []int
	for u := range r.buildUsers {
		uids = append(uids, u)
	}
	sort.Ints(uids)
	lock := func(path string) bool {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			return false
		}
		t.Cleanup(func() { f.Close() })
		return true
	}
	uid := -1
	if !eventually(func() bool {
		for _, u := range uids {
			if lock(filepath.Join("/nix/var/nix/userpool", strconv.Itoa(u))) {
				uid = u
				return true
			}
		}
		return false
	}) {
		t.Fatalf("no free Nix build user among %v", uids)
	}
	pool := t.TempDir()
	for _, u := range uids {
		if u != uid && !lock(filepath.Join(pool, strconv.Itoa(u))) {
			t.Fatalf("lock build user %d in the private pool", u)
		}
	}
	return uid, pool
}

// escProcessesWith lists the host pids whose command line contains s.
func escProcessesWith(s string) []string {
	es, _ := os.ReadDir("/proc")
	var ps []string
	for _, e := range es {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if bytes.Contains(b, []byte(s)) {
			ps = append(ps, e.Name()+" "+strings.ReplaceAll(string(b), "\x00", " "))
		}
	}
	return ps
}

// escTIOCSTI: the helper pushes "echo INJECTED\n" with TIOCSTI into fds
// 0, 1, 2 and /dev/tty, after trying to steal stdin as its controlling
// terminal. nbs runs in a real terminal (a pty the test owns, nbs's
// controlling terminal): then the sandbox has a pty of its own and
// whatever it injects stays there. Also with only stdin a terminal (nbs
// hands it through as is) and with pipes.
// enter is how nbs enters the sandbox: shell DIR, or attach TARGET.
func escTIOCSTI(t *testing.T, r runner, enter ...string) {
	cases := []struct {
		name                string
		stdinTTY, stdoutTTY bool
		fds                 string // what the helper sees on 0, 1, 2
		stealFails          bool
	}{
		{name: "terminal", stdinTTY: true, stdoutTTY: true, fds: "sandbox pty"},
		{name: "stdin terminal", stdinTTY: true, stealFails: true},
		{name: "pipes", stealFails: true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			master, outer := escPTY(t)
			cmd, tmp := escCommand(t, r, append(enter, "/build/escape", "tty")...)
			var stdout, stderr bytes.Buffer
			var slaves []*os.File
			openSlave := func() *os.File {
				s, err := os.OpenFile(outer.Name(), os.O_RDWR|syscall.O_NOCTTY, 0)
				if err != nil {
					t.Fatal(err)
				}
				slaves = append(slaves, s)
				return s
			}
			if c.stdinTTY {
				cmd.Stdin = openSlave()
				// nbs's controlling terminal, as in a login shell.
				cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			} else {
				pr, pw, err := os.Pipe()
				if err != nil {
					t.Fatal(err)
				}
				defer pw.Close()
				cmd.Stdin = pr
				slaves = append(slaves, pr)
			}
			if c.stdoutTTY {
				s := openSlave()
				cmd.Stdout, cmd.Stderr = s, s
			} else {
				cmd.Stdout, cmd.Stderr = &stdout, &stderr
			}
			var mu sync.Mutex
			var screen bytes.Buffer
			readDone := make(chan struct{})
			go func() {
				defer close(readDone)
				buf := make([]byte, 4096)
				for {
					n, err := master.Read(buf)
					mu.Lock()
					screen.Write(buf[:n])
					mu.Unlock()
					if err != nil {
						return
					}
				}
			}()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			for _, s := range slaves {
				s.Close()
			}
			code := escStatus(t, cmd.Wait())
			// Everything nbs relayed is on its way to the master: wait
			// for the helper's last record (report.TTYOwnQueue), which
			// the kernel passes on a moment after nbs wrote it.
			eventually(func() bool {
				mu.Lock()
				defer mu.Unlock()
				rs, _ := report.Parse(stdout.String() + screen.String())
				_, ok := rs[report.Key{Check: report.TTYOwnQueue}]
				return ok
			})
			master.SetReadDeadline(time.Now())
			<-readDone
			mu.Lock()
			out := stdout.String() + screen.String()
			mu.Unlock()
			if code != 0 {
				t.Fatalf("status %d\noutput:\n%s\nstderr:\n%s", code, out, stderr.String())
			}
			e := escParse(t, out)
			if testing.Verbose() {
				t.Logf("the helper's results:\n%s", e)
			}

			// The terminal nbs runs in: its input queue must be empty.
			if q := escInputQueue(t, outer); q != "" {
				t.Errorf("ESCAPE: the terminal nbs runs in has input nobody typed: %q", q)
			}
			for fd := 0; fd <= 2; fd++ {
				arg := strconv.Itoa(fd)
				switch {
				case c.fds != "":
					e.want(t, report.TTY, arg, c.fds)
				case fd == 0 && c.stdinTTY:
					// Handed through by design; it must still not
					// take keystrokes.
					if k := e.result(report.TTY, arg); !strings.HasPrefix(k, "foreign terminal") {
						t.Errorf("tty fd %d = %q, want the terminal nbs was given", fd, k)
					}
				default:
					e.want(t, report.TTY, arg, "not a terminal")
				}
			}
			if c.fds == "sandbox pty" {
				// Its own pty takes the keystrokes; each one must be
				// found there exactly once: an injection that reached
				// the outer terminal would come back through nbs's
				// relay as one more.
				e.want(t, report.TTYOwnQueue, "", e.result(report.TTYInjected, ""))
				return
			}
			for fd := 0; fd <= 2; fd++ {
				want := []string{"ENOTTY"}
				if fd == 0 && c.stdinTTY {
					// Not our controlling terminal (EPERM); EIO where
					// dev.tty.legacy_tiocsti = 0.
					want = []string{"EPERM", "EIO"}
				}
				e.blocked(t, report.TTYInject, strconv.Itoa(fd), want...)
				if c.stealFails {
					e.blocked(t, report.TTYSteal, strconv.Itoa(fd))
				}
			}
			e.blocked(t, report.TTYInject, "/dev/tty", "ENXIO")
			e.want(t, report.TTYInjected, "", "0")
			assertCleanTmp(t, result{tmp: tmp})
		})
	}
}

// escPTY opens a pty pair: the master (read by the test) and the slave's
// path, to be opened as nbs's terminal.
func escPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	rc, err := m.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var ioErr error
	rc.Control(func(fd uintptr) {
		if ioErr = unix.IoctlSetPointerInt(int(fd), unix.TIOCSPTLCK, 0); ioErr != nil {
			return
		}
		n, ioErr = unix.IoctlGetInt(int(fd), unix.TIOCGPTN)
	})
	if ioErr != nil {
		t.Fatalf("unlockpt/ptsname: %v", ioErr)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return m, s
}

// escInputQueue returns what waits in the terminal's input queue (what a
// shell reading it would get next): FIONREAD, then everything readable
// with the line discipline switched to non-canonical, so that a partial
// line counts too.
func escInputQueue(t *testing.T, slave *os.File) string {
	t.Helper()
	fd := int(slave.Fd())
	var got []byte
	if n, err := unix.IoctlGetInt(fd, unix.TIOCINQ); err != nil {
		t.Fatalf("FIONREAD: %v", err)
	} else if n > 0 {
		got = append(got, fmt.Sprintf("(FIONREAD %d) ", n)...)
	}
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		t.Fatalf("tcgetattr: %v", err)
	}
	tio.Lflag &^= unix.ICANON | unix.ECHO
	tio.Cc[unix.VMIN], tio.Cc[unix.VTIME] = 0, 0
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		t.Fatalf("tcsetattr: %v", err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := unix.Read(fd, buf)
		if n <= 0 || err != nil {
			break
		}
		got = append(got, buf[:n]...)
	}
	return string(got)
}
