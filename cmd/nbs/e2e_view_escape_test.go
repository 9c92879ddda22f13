//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/sandbox"
	"golang.org/x/sys/unix"

	"github.com/nix-build-shell/nbs/testdata/escape/report"
)

// escViewLinks are failLinks' symlinks and where they point.
var escViewLinks = map[string]string{
	"/build/src/shadow-link": "/etc/shadow",
	"/build/src/up-link":     "../../..",
	"/build/src/daemon-link": "/nix/var/nix/daemon-socket/socket",
}

// escView runs the helper's view checks in nbs shell on dir (a copy of
// failLinks' kept directory) in the entry mode r.env names: none of the
// view's host paths (the kept directory, the work directory and its
// upper/, work/, lower/, build/, the TMPDIR holding it) is there inside;
// symlinks stay symlinks and resolve in the sandbox; the fifo is the
// sandbox's own, not the host's (the test holds the kept one open for
// reading); every change inside stays inside (TestContainment compares
// the kept directory's sums, mtimes included, before and after); the
// FUSE server, a host process, is out of reach.
func escView(t *testing.T, r runner, dir, mode string) {
	hostFifo, err := unix.Open(filepath.Join(dir, "src/fifo"), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open the kept fifo: %v", err)
	}
	defer unix.Close(hostFifo)
	var links []string
	for l := range escViewLinks {
		links = append(links, l)
	}
	cmd, tmp := escCommand(t, r, "shell", dir, "/build/escape", "view",
		"-links", strings.Join(links, ","), "-follow", "/build/src/shadow-link,/build/src/daemon-link",
		"-fifo", "/build/src/fifo", "-write", "/build/src")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	nbsPid := cmd.Process.Pid
	// The work directory exists before the sandbox starts, and so does
	// the FUSE server (the child mounts the view before the command).
	var wd string
	if !eventually(func() bool {
		es := tmpEntries(tmp)
		if len(es) != 1 {
			return false
		}
		wd = filepath.Join(tmp, es[0])
		_, err := os.Lstat(filepath.Join(wd, "build"))
		return err == nil
	}) {
		t.Errorf("no work directory in %s while nbs runs", tmp)
	}
	fuse := 0
	if mode == sandbox.EntryFUSE && !eventually(func() bool { fuse = childNamed(nbsPid, "fuse-overlayfs"); return fuse > 0 }) {
		t.Errorf("no fuse-overlayfs child of nbs (pid %d)", nbsPid)
	}
	line := fmt.Sprintf("test=%d nbs=%d", os.Getpid(), nbsPid)
	if fuse > 0 {
		line += fmt.Sprintf(" fuse=%d", fuse)
	}
	hosts := []string{dir, filepath.Dir(dir), tmp}
	if wd != "" {
		hosts = append(hosts, wd)
		for _, d := range []string{"upper", "work", "lower", "build", "root", "tmp", "store"} {
			hosts = append(hosts, filepath.Join(wd, d))
		}
	}
	for _, h := range hosts {
		line += " path=" + h
	}
	fmt.Fprintln(stdin, line)
	stdin.Close()
	code := escStatus(t, cmd.Wait())
	if code != 0 || stdout.Len() == 0 {
		t.Fatalf("nbs shell %s /build/escape view: status %d\nstdout:\n%s\nstderr:\n%s", dir, code, stdout.String(), stderr.String())
	}
	e := escParse(t, stdout.String())
	if testing.Verbose() {
		t.Logf("the helper's results:\n%s", e)
	}
	for _, h := range hosts {
		e.blocked(t, report.ViewPath, h, "ENOENT")
	}
	for l, target := range escViewLinks {
		e.want(t, report.ViewLink, l, "symlink "+target)
	}
	// Up out of /build is the sandbox's root, never the host's.
	e.want(t, report.Ls, "/build/src/up-link/", escRoot)
	e.blocked(t, report.ViewFollow, "/build/src/shadow-link", "ENOENT")
	e.blocked(t, report.ViewFollow, "/build/src/daemon-link", "ENOENT")
	e.blocked(t, report.ViewFifoHost, "/build/src/fifo", "ENXIO")
	if n, err := unix.Read(hostFifo, make([]byte, 64)); n > 0 {
		t.Errorf("ESCAPE: the kept directory's fifo got %d bytes from the sandbox (%v)", n, err)
	}
	writes := 0
	for k, rec := range e.rs {
		if k.Check == report.ViewWrite {
			writes++
			if rec.Result() != "ok" {
				t.Errorf("%s = %s: the sandbox cannot change its own /build", k, rec.Result())
			}
		}
	}
	if writes < 10 {
		t.Errorf("only %d changes were made in /build", writes)
	}
	if fuse > 0 {
		e.blocked(t, report.HostPidKill0, "fuse", "ESRCH")
		e.blocked(t, report.HostPidPtrace, "fuse", "ESRCH")
		e.blocked(t, report.HostPidPidfd, "fuse", "ESRCH")
		e.blocked(t, report.HostPidProc, "fuse", "ENOENT")
	}
	escNoHostProcesses(t, e)
	assertCleanTmp(t, result{tmp: tmp})
}

// childNamed is a child of pid whose comm is name, 0 if none.
func childNamed(pid int, name string) int {
	es, _ := os.ReadDir("/proc")
	for _, e := range es {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …
		s := string(b)
		i, j := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if i < 0 || j < i {
			continue
		}
		f := strings.Fields(s[j+1:])
		if s[i+1:j] == name && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			return p
		}
	}
	return 0
}

// escDevice: a device node and a socket in the kept directory never
// reach the host through /build. No build can make a device node (Nix's
// sandbox has no CAP_MKNOD), so the test, as root, adds one to a copy of
// the kept directory: a block device of the host's root file system,
// which would be the whole disk; and a unix socket on which the test
// listens on the host while the sandbox connects. A copy leaves both
// out (ENOENT); a view, chosen without looking inside the directory,
// shows them inert: the device does not open (EACCES: the view is
// mounted in the sandbox's user namespace), the socket is the view's
// own inode, which nobody listens on (ECONNREFUSED).
func escDevice(t *testing.T, r runner, dir, mode string) {
	if os.Geteuid() != 0 {
		missing(t, "making a device node needs root")
	}
	base, err := os.MkdirTemp("", "nbs-escape-dev-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	dev := filepath.Join(base, "kept")
	if out, err := exec.Command("cp", "-a", dir, dev).CombinedOutput(); err != nil {
		t.Fatalf("copy %s: %v %s", dir, err, out)
	}
	var root, st unix.Stat_t
	if err := unix.Stat("/", &root); err != nil {
		t.Fatal(err)
	}
	node := filepath.Join(dev, "src/disk")
	if err := unix.Mknod(node, unix.S_IFBLK|0o666, int(root.Dev)); err != nil {
		t.Fatalf("mknod %s: %v", node, err)
	}
	sock := filepath.Join(dev, "src/sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	os.Chmod(sock, 0o777)
	accepted := make(chan struct{}, 1)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
			accepted <- struct{}{}
		}
	}()
	if err := unix.Stat(dev, &st); err == nil {
		os.Lchown(node, int(st.Uid), int(st.Gid))
		os.Lchown(sock, int(st.Uid), int(st.Gid))
	}
	before := treeSum(t, dev)
	try := func(r runner, copy bool) {
		t.Helper()
		cmd, tmp := escCommand(t, r, "shell", dev, "/build/escape", "view", "-device", "/build/src/disk", "-socket", "/build/src/sock")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		cmd.Stdin = strings.NewReader("\n")
		if code := escStatus(t, cmd.Run()); code != 0 {
			t.Fatalf("nbs shell: status %d\n%s%s", code, stdout.String(), stderr.String())
		}
		e := escParse(t, stdout.String())
		if copy {
			e.blocked(t, report.ViewDevice, "/build/src/disk", "ENOENT")
			e.blocked(t, report.ViewSocket, "/build/src/sock", "ENOENT")
		} else {
			e.blocked(t, report.ViewDevice, "/build/src/disk", "EACCES")
			e.blocked(t, report.ViewSocket, "/build/src/sock", "ECONNREFUSED")
		}
		select {
		case <-accepted:
			t.Error("ESCAPE: the sandbox reached the host's listener on the kept socket")
		default:
		}
		assertCleanTmp(t, result{tmp: tmp})
	}
	try(r, mode == sandbox.EntryCopy)
	if after := treeSum(t, dev); after != before {
		t.Errorf("ESCAPE: the kept directory changed:\n%s\nwas\n%s", after, before)
	}
}
