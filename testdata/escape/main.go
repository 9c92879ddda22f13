// Command escape tries, from inside an nbs sandbox, to break out of it:
// write to the store, reach the network, inject keystrokes into the
// user's terminal, write the nbs binary, see host files, gain privileges
// and signal or trace processes outside (issue 5, containment). The end-
// to-end test cmd/nbs/e2e_containment_test.go puts it into a copy of a
// kept build directory, runs it as /build/escape under `nbs shell` and
// asserts that every attempt failed.
//
// It prints one JSON record a line (package report: the check, what it
// was applied to, and how it ended: ok, the errno's name, or a value for
// a fact). It never aborts on a blocked attempt and exits 0 (the kill
// mode exits with the status it is given), so that the test sees every
// result. It changes nothing outside the sandbox even when an attempt
// succeeds: files it manages to open for writing are closed unwritten,
// a chmod repeats the current mode, a rename is undone.
//
// It must be static (CGO_ENABLED=0): the sandbox holds only the build's
// input closure.
//
// Modes:
//
//	escape probe [flags]   every attempt except kill(-1) and TIOCSTI on a terminal
//	escape nested NONCE    run by probe in a nested user and mount namespace
//	escape tty             the terminal attempts (TIOCSCTTY, TIOCSTI)
//	escape kill [flags]    kill(-1, SIGKILL) and signals to host pids, then exit with -status
//	escape killall         kill(-1, SIGKILL) from a process that is not PID 1
//	escape sleep           a target for ptrace and kill
//	escape linger NONCE    a process that tries to outlive the sandbox
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nix-build-shell/nbs/testdata/escape/report"
)

// out prints the records; nested marks them as made in the nested
// namespace.
type out struct{ nested bool }

func (o out) emit(r report.Record) {
	r.Nested = o.nested
	if err := report.Write(os.Stdout, r); err != nil {
		fmt.Fprintln(os.Stderr, "escape:", err)
		os.Exit(3)
	}
}

// err reports how the call of check c on arg ended.
func (o out) err(c report.Check, arg string, err error) {
	r := report.Record{Check: c, Arg: arg}
	var en unix.Errno
	switch {
	case err == nil:
		r.Outcome = report.OK
	case err == errTimeout:
		r.Outcome = report.Timeout
	case errors.As(err, &en) && unix.ErrnoName(en) != "":
		r.Outcome, r.Errno = report.Errno, unix.ErrnoName(en)
	default:
		r.Outcome, r.Detail = report.Error, err.Error()
	}
	o.emit(r)
}

// value reports a fact.
func (o out) value(c report.Check, arg, format string, args ...any) {
	o.emit(report.Record{Check: c, Arg: arg, Outcome: report.Value, Detail: fmt.Sprintf(format, args...)})
}

// reached reports a call that went through and what it reached, or how
// it failed.
func (o out) reached(c report.Check, arg, what string, err error) {
	if err != nil {
		o.err(c, arg, err)
		return
	}
	o.emit(report.Record{Check: c, Arg: arg, Outcome: report.OK, Detail: what})
}

// list reports the entries of dir as a fact (c: report.Ls, …) or, for
// an attempt, as what it reached.
func (o out) list(c report.Check, arg, dir string) {
	ns, err := listDir(dir)
	switch {
	case err != nil:
		o.err(c, arg, err)
	case c.Fact():
		o.value(c, arg, "%s", ns)
	default:
		o.reached(c, arg, ns, nil)
	}
}

// errText is an error as the records name it: the errno's name where
// there is one.
func errText(err error) string {
	var en unix.Errno
	if errors.As(err, &en) && unix.ErrnoName(en) != "" {
		return unix.ErrnoName(en)
	}
	return err.Error()
}

// errTimeout: a connection neither went through nor failed in time.
var errTimeout = errors.New("timeout")

const payload = "echo INJECTED\n"

func main() {
	// First, before the Go runtime opens anything of its own: the
	// descriptors the sandbox handed us.
	fds, fdsErr := inheritedFDs()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: escape probe|nested|tty|kill|killall|sleep|linger|view")
		os.Exit(2)
	}
	// Nothing here may hang the sandbox (and with it the test).
	if m := os.Args[1]; m != "sleep" && m != "linger" {
		time.AfterFunc(60*time.Second, func() {
			out{}.emit(report.Record{Check: report.Watchdog, Arg: m, Outcome: report.Timeout})
			os.Exit(3)
		})
	}
	o := out{}
	switch os.Args[1] {
	case "probe":
		probe(o, fds, fdsErr, os.Args[2:])
	case "nested":
		nested(out{nested: true}, os.Args[2])
	case "tty":
		ttyAttempts(o)
	case "kill":
		killMode(o, os.Args[2:])
	case "view":
		viewMode(o, os.Args[2:])
	case "killall":
		o.err(report.KillAll, strconv.Itoa(os.Getpid()), unix.Kill(-1, unix.SIGKILL))
	case "sleep":
		time.Sleep(time.Hour)
	case "linger":
		signal.Ignore(syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
		time.Sleep(5 * time.Minute)
	default:
		fmt.Fprintln(os.Stderr, "escape: unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// inheritedFDs lists /proc/self/fd with raw system calls, so that no
// descriptor of our own (the runtime's poller) shows.
func inheritedFDs() ([]fdInfo, error) {
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	buf := make([]byte, 8192)
	var names []string
	for {
		n, err := unix.ReadDirent(dfd, buf)
		if err != nil || n <= 0 {
			break
		}
		_, _, names = unix.ParseDirent(buf[:n], -1, names)
	}
	var fds []fdInfo
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd == dfd {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + n)
		fds = append(fds, fdInfo{fd, target})
	}
	sort.Slice(fds, func(i, j int) bool { return fds[i].fd < fds[j].fd })
	return fds, nil
}

// fdInfo is an inherited descriptor and what it refers to.
type fdInfo struct {
	fd     int
	target string
}

type probeFlags struct {
	port, udpPort int
	abstract      string
	marker        string
	canary        string
	nonce         string
}

func probe(o out, fds []fdInfo, fdsErr error, args []string) {
	var f probeFlags
	fl := flag.NewFlagSet("probe", flag.ExitOnError)
	fl.IntVar(&f.port, "port", 0, "TCP port the test listens on at the host's 127.0.0.1")
	fl.IntVar(&f.udpPort, "udp", 0, "UDP port the test listens on at the host's 127.0.0.1")
	fl.StringVar(&f.abstract, "abstract", "", "abstract unix socket the test listens on (without @)")
	fl.StringVar(&f.marker, "marker", "", "name of a file the test made in the host's /tmp")
	fl.StringVar(&f.canary, "canary", "", "host path of a file that nbs must not remove")
	fl.StringVar(&f.nonce, "nonce", "x", "makes the names of what we create unique")
	fl.Parse(args)

	// The test writes the host pids to our stdin: "test=N nbs=N".
	hostPids := readHostPids(5 * time.Second)

	// Inherited descriptors: only stdin, stdout and stderr (Nix's
	// closeExtraFDs); a leaked directory descriptor is a way out.
	var nums []string
	for _, fd := range fds {
		nums = append(nums, strconv.Itoa(fd.fd))
		if fd.fd > 2 {
			o.value(report.FD, strconv.Itoa(fd.fd), "%s", fd.target)
		}
	}
	if fdsErr != nil {
		o.err(report.FDs, "", fdsErr)
	} else {
		o.value(report.FDs, "", "%s", strings.Join(nums, " "))
	}

	status(o)
	hostPaths(o, f.marker)
	mounts(o)
	store(o, f.nonce)
	network(o, f)
	ttyAttempts(o)
	procExe(o)
	privileges(o, f.nonce)
	xattrs(o, f.nonce)
	ptmx(o)
	handles(o)
	procWrites(o)
	runNested(o, f.nonce)
	signals(o, hostPids)
	plant(o, f.canary)
}

func readHostPids(wait time.Duration) map[string]int {
	return hostPidsIn(readStdinLine(wait))
}

// readStdinLine is the line the test writes to our stdin, "" when none
// comes within wait.
func readStdinLine(wait time.Duration) string {
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		return s
	case <-time.After(wait):
		return ""
	}
}

// hostPidsIn reads the "ROLE=PID" fields of the test's line.
func hostPidsIn(s string) map[string]int {
	pids := map[string]int{}
	for _, kv := range strings.Fields(s) {
		k, v, _ := strings.Cut(kv, "=")
		if n, err := strconv.Atoi(v); err == nil {
			pids[k] = n
		}
	}
	return pids
}

// status: no capabilities, no_new_privs, the seccomp filter.
func status(o out) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		o.err(report.Setup, "read /proc/self/status", err)
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		switch k {
		case "Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs", "Seccomp", "NSpid":
			if ok {
				o.value(report.Status, k, "%s", strings.Join(strings.Fields(v), " "))
			}
		}
	}
	o.err(report.Setresuid, "", unix.Setresuid(0, 0, 0))
	o.err(report.Setresgid, "", unix.Setresgid(0, 0, 0))
}

func listDir(p string) (string, error) {
	es, err := os.ReadDir(p)
	if err != nil {
		return "", err
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	return strings.Join(ns, " "), nil
}

// hostPaths: nothing of the host outside the mount plan is visible.
func hostPaths(o out, marker string) {
	o.list(report.Ls, "/", "/")
	o.list(report.Ls, "/tmp", "/tmp")
	paths := []string{"/home", "/root", "/etc/shadow", "/var", "/usr", "/sys", "/run", "/boot",
		"/lib", "/lib64", "/opt", "/srv", "/mnt", "/media", "/nix/var", "/etc/nix", "/etc/ssh", "/proc/1/root/home"}
	if marker != "" {
		paths = append(paths, "/tmp/"+marker)
	}
	for _, p := range paths {
		_, err := os.Lstat(p)
		o.err(report.Host, p, err)
	}
	// /proc/1/root is the sandbox's root, not the host's.
	if l, err := os.Readlink("/proc/1/root"); err != nil {
		o.err(report.Proc1Root, "", err)
	} else {
		o.value(report.Proc1Root, "", "%s", l)
	}
	o.list(report.Ls, "/proc/1/root", "/proc/1/root")
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/1/root/.", &a); err != nil {
		o.err(report.Proc1RootIsMe, "", err)
	} else if err := unix.Stat("/", &b); err != nil {
		o.err(report.Proc1RootIsMe, "", err)
	} else {
		o.value(report.Proc1RootIsMe, "", "%v", a.Dev == b.Dev && a.Ino == b.Ino)
	}
	// Going up from / stays at /.
	o.list(report.Ls, "/../../..", "/../../..")
}

type mountInfo struct {
	point, opts, fstype string
}

func readMounts() ([]mountInfo, error) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	var ms []mountInfo
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(line)
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || sep+1 >= len(f) {
			continue
		}
		ms = append(ms, mountInfo{point: unescape(f[4]), opts: f[5], fstype: f[sep+1]})
	}
	return ms, nil
}

// unescape undoes mountinfo's octal escapes (\040 for space, …).
func unescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func mounts(o out) {
	ms, err := readMounts()
	if err != nil {
		o.err(report.Setup, "read /proc/self/mountinfo", err)
		return
	}
	for _, m := range ms {
		o.value(report.Mount, m.point, "%s %s", m.fstype, m.opts)
	}
}

// storeMounts are the mount points below /nix/store: the input paths.
func storeMounts() []string {
	ms, _ := readMounts()
	var ps []string
	for _, m := range ms {
		if strings.HasPrefix(m.point, "/nix/store/") {
			ps = append(ps, m.point)
		}
	}
	return ps
}

// store: every input path is read-only; what is made in the store dir
// stays in the sandbox (the test looks for it on the host).
func store(o out, nonce string) {
	es, err := os.ReadDir("/nix/store")
	if err != nil {
		o.err(report.Setup, "read /nix/store", err)
		return
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	o.value(report.StoreEntries, "", "%s", strings.Join(names, " "))
	for _, n := range names {
		p := "/nix/store/" + n
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			o.err(report.Setup, "lstat "+p, err)
			continue
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(p, &sfs); err != nil {
			o.err(report.Setup, "statfs "+p, err)
		} else if sfs.Flags&unix.ST_RDONLY != 0 {
			o.value(report.StoreMount, n, "ro")
		} else {
			o.value(report.StoreMount, n, "rw")
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			o.err(report.StoreCreate, n, createFile(filepath.Join(p, "nbs-escape-"+nonce)))
			o.err(report.StoreMkdir, n, mkdirOnce(filepath.Join(p, "nbs-escape-dir-"+nonce)))
			if file := firstFile(p); file != "" {
				o.err(report.StoreOpenWriteF, n, openWrite(file))
				o.err(report.StoreLinkF, n, linkOnce(file, "/nix/store/nbs-escape-link-"+nonce))
			}
		case unix.S_IFREG:
			o.err(report.StoreOpenWrite, n, openWrite(p))
			o.err(report.StoreLink, n, linkOnce(p, "/nix/store/nbs-escape-link-"+nonce))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			// The mode it already has: harmless if it went through.
			o.err(report.StoreChmod, n, unix.Chmod(p, st.Mode&0o7777))
			o.err(report.StoreUtimes, n, unix.UtimesNano(p, []unix.Timespec{
				unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())}))
		}
		moved := p + "-nbs-escape-moved"
		err := unix.Rename(p, moved)
		if err == nil {
			unix.Rename(moved, p)
		}
		o.err(report.StoreRename, n, err)
		o.value(report.StoreWritable, n, "%s", writable(p))
	}
	// By design: Nix's store dir is writable for $out; ours is private.
	o.err(report.StoreDirMkdir, "", os.Mkdir("/nix/store/nbs-escape-"+nonce, 0o755))
	o.list(report.Ls, "/nix", "/nix")
}

// createFile creates p and removes it again.
func createFile(p string) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return err
	}
	unix.Close(fd)
	unix.Unlink(p)
	return nil
}

func mkdirOnce(p string) error {
	err := unix.Mkdir(p, 0o755)
	if err == nil {
		unix.Rmdir(p)
	}
	return err
}

func linkOnce(from, to string) error {
	err := unix.Link(from, to)
	if err == nil {
		unix.Unlink(to)
	}
	return err
}

// openWrite opens p for writing and closes it unwritten.
func openWrite(p string) error {
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	unix.Close(fd)
	return nil
}

func firstFile(root string) string {
	var found string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && found == "" {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	return found
}

// writable lists the files and directories below p that access(2) calls
// writable; on a read-only mount there are none.
func writable(p string) string {
	var w []string
	n := 0
	filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		n++
		if unix.Access(q, unix.W_OK) == nil {
			w = append(w, q)
		}
		return nil
	})
	if len(w) == 0 {
		return fmt.Sprintf("none of %d", n)
	}
	if len(w) > 5 {
		w = append(w[:5], "…")
	}
	return strings.Join(w, " ")
}

// network: nothing but the sandbox's own loopback can be reached.
func network(o out, f probeFlags) {
	ifs, err := net.Interfaces()
	if err != nil {
		o.err(report.NetInterfaces, "", err)
	} else {
		var ns []string
		for _, i := range ifs {
			ns = append(ns, i.Name)
		}
		o.value(report.NetInterfaces, "", "%s", strings.Join(ns, " "))
	}
	if b, err := os.ReadFile("/proc/net/route"); err != nil {
		o.err(report.NetRoutesV4, "", err)
	} else {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		o.value(report.NetRoutesV4, "", "%d", len(lines)-1)
	}
	if b, err := os.ReadFile("/proc/net/ipv6_route"); err != nil {
		o.err(report.NetRoutesV6, "", err)
	} else {
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if fs := strings.Fields(l); len(fs) > 0 && fs[len(fs)-1] != "lo" {
				n++
			}
		}
		o.value(report.NetRoutesV6, "", "%d", n)
	}
	if ip, err := exec.LookPath("ip"); err != nil {
		o.err(report.IPRoute, "", err)
	} else {
		b, err := exec.Command(ip, "route").CombinedOutput()
		if err != nil {
			o.err(report.IPRoute, "", fmt.Errorf("%w: %s", err, b))
		} else {
			o.value(report.IPRoute, "", "%s", strings.TrimSpace(string(b)))
		}
	}

	if f.port != 0 {
		_, err := connectTCP(unix.AF_INET, &unix.SockaddrInet4{Port: f.port, Addr: [4]byte{127, 0, 0, 1}})
		o.err(report.NetTCP, fmt.Sprintf("127.0.0.1:%d", f.port), err)
		_, err = connectTCP(unix.AF_INET6, &unix.SockaddrInet6{Port: f.port, Addr: [16]byte{15: 1}})
		o.err(report.NetTCP, fmt.Sprintf("[::1]:%d", f.port), err)
	}
	if f.udpPort != 0 {
		o.err(report.NetUDPLoopback, fmt.Sprintf("127.0.0.1:%d", f.udpPort),
			sendUDP(&unix.SockaddrInet4{Port: f.udpPort, Addr: [4]byte{127, 0, 0, 1}}))
	}
	// TEST-NET-1 (RFC 5737), the discard port: with no route no packet
	// can leave, and connect must say so at once.
	d, err := connectTCP(unix.AF_INET, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{192, 0, 2, 1}})
	o.err(report.NetTCP, report.TestNet, err)
	o.value(report.NetTCPImmediate, report.TestNet, "%v", d < time.Second)
	o.err(report.NetUDP, report.TestNet, sendUDP(&unix.SockaddrInet4{Port: 9, Addr: [4]byte{192, 0, 2, 1}}))
	// Abstract unix sockets belong to the network namespace.
	if f.abstract != "" {
		o.err(report.NetUnix, "@"+f.abstract, connectUnix("@"+f.abstract))
	}
	o.err(report.NetUnix, report.DaemonSocket, connectUnix(report.DaemonSocket))
}

// connectTCP connects without blocking for more than 3 seconds.
func connectTCP(family int, sa unix.Sockaddr) (time.Duration, error) {
	start := time.Now()
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, sa)
	if err == unix.EINPROGRESS {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		n, perr := unix.Poll(p, 3000)
		switch {
		case perr != nil:
			err = perr
		case n == 0:
			return time.Since(start), errTimeout
		default:
			soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			err = gerr
			if gerr == nil && soerr != 0 {
				err = unix.Errno(soerr)
			}
		}
	}
	return time.Since(start), err
}

func sendUDP(sa *unix.SockaddrInet4) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Sendto(fd, []byte("nbs-escape"), 0, sa)
}

func connectUnix(name string) error {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrUnix{Name: name})
}

// ttyAttempts tries to inject keystrokes (TIOCSTI) on every terminal we
// can name, after trying to make stdin our controlling terminal by force
// (TIOCSCTTY with arg 1). The sandbox's own pty (its own devpts
// instance) may take them: they then wait in its own input queue, which
// we drain and count, so that any injection that reached the user's
// terminal and came back through nbs's relay shows as one too many.
func ttyAttempts(o out) {
	var pts unix.Stat_t
	ptsErr := unix.Stat("/dev/pts/ptmx", &pts)
	kind := func(fd int) string {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return errText(err)
		}
		if _, err := unix.IoctlGetTermios(fd, unix.TCGETS); err != nil {
			return "not a terminal"
		}
		if ptsErr == nil && st.Dev == pts.Dev {
			return "sandbox pty"
		}
		return fmt.Sprintf("foreign terminal %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	for fd := 0; fd <= 2; fd++ {
		o.value(report.TTY, strconv.Itoa(fd), "%s", kind(fd))
	}
	for fd := 0; fd <= 2; fd++ {
		o.err(report.TTYSteal, strconv.Itoa(fd), unix.IoctlSetInt(fd, unix.TIOCSCTTY, 1))
	}
	ok := 0
	for fd := 0; fd <= 2; fd++ {
		err := inject(fd)
		if err == nil {
			ok++
		}
		o.err(report.TTYInject, strconv.Itoa(fd), err)
	}
	tty, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		o.err(report.TTYInject, "/dev/tty", err)
	} else {
		err := inject(tty)
		if err == nil {
			ok++
		}
		o.err(report.TTYInject, "/dev/tty", err)
		unix.Close(tty)
	}
	o.value(report.TTYInjected, "", "%d", ok)
	if kind(0) == "sandbox pty" {
		o.value(report.TTYOwnQueue, "", "%d", drainCount(0))
	} else {
		o.value(report.TTYOwnQueue, "", "not drained")
	}
}

// ptmx: /dev/ptmx is a character device (the assignment's test lists
// /dev for one) that allocates in the sandbox's own devpts instance: the
// new pty's device must be that of /dev/pts inside, which the test
// compares with the host's devpts.
func ptmx(o out) {
	var st unix.Stat_t
	if err := unix.Lstat("/dev/ptmx", &st); err != nil {
		o.err(report.PtmxType, "", err)
	} else if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		o.value(report.PtmxType, "", "mode %#o, not a character device", st.Mode)
	} else {
		o.value(report.PtmxType, "", "char %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		o.err(report.PtmxDevpts, "", err)
		return
	}
	defer unix.Close(m)
	n, err := unix.IoctlGetInt(m, unix.TIOCGPTN)
	if err == nil {
		err = unix.IoctlSetPointerInt(m, unix.TIOCSPTLCK, 0)
	}
	peer := -1
	if err == nil {
		// The slave as the master's devpts instance knows it, whatever
		// path names it.
		r, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(m), unix.TIOCGPTPEER, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC)
		peer, err = int(r), errnoOf(e)
	}
	var ps, pts, named unix.Stat_t
	if err == nil {
		defer unix.Close(peer)
		err = unix.Fstat(peer, &ps)
	}
	if err != nil {
		o.err(report.PtmxDevpts, "", err)
		return
	}
	o.value(report.PtmxDevpts, "", "%d:%d", unix.Major(ps.Dev), unix.Minor(ps.Dev))
	in := unix.Stat("/dev/pts", &pts) == nil && pts.Dev == ps.Dev &&
		unix.Stat(fmt.Sprintf("/dev/pts/%d", n), &named) == nil && named.Rdev == ps.Rdev
	o.value(report.PtmxInPts, "", "%v", in)
}

// inject pushes the payload into fd's input queue, one byte per ioctl.
func inject(fd int) error {
	for i := 0; i < len(payload); i++ {
		c := payload[i]
		if _, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TIOCSTI, uintptr(unsafe.Pointer(&c))); e != 0 {
			return e
		}
	}
	return nil
}

// drainCount reads fd until it has been quiet for a second and counts
// the injected lines in what it read.
func drainCount(fd int) int {
	var got []byte
	buf := make([]byte, 4096)
	for {
		p := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		n, err := unix.Poll(p, 1000)
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 || p[0].Revents&unix.POLLIN == 0 {
			break
		}
		m, err := unix.Read(fd, buf)
		if m <= 0 || err != nil {
			break
		}
		got = append(got, buf[:m]...)
	}
	return strings.Count(string(got), "INJECTED")
}

func pids() []int {
	es, _ := os.ReadDir("/proc")
	var ps []int
	for _, e := range es {
		if n, err := strconv.Atoi(e.Name()); err == nil {
			ps = append(ps, n)
		}
	}
	sort.Ints(ps)
	return ps
}

// procExe: the executable of every visible process, the files it maps
// (as major:minor:inode, for the test to compare with the nbs binary),
// and whether it can be opened for writing through /proc/PID/exe.
func procExe(o out) {
	var vis []string
	for _, pid := range pids() {
		vis = append(vis, strconv.Itoa(pid))
		arg := strconv.Itoa(pid)
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			link = errText(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
			o.value(report.ProcExe, arg, "%s %s", link, errText(err))
		} else {
			o.value(report.ProcExe, arg, "%s %d:%d:%d", link, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
		}
		for _, mode := range []struct {
			check report.Check
			flag  int
		}{{report.ProcExeWrite, unix.O_WRONLY}, {report.ProcExeRdwr, unix.O_RDWR}, {report.ProcExeAppend, unix.O_WRONLY | unix.O_APPEND}} {
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", pid), mode.flag|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd) // never written
			}
			o.err(mode.check, arg, err)
		}
		if ids, err := mappedFiles(pid); err != nil {
			o.err(report.ProcMaps, arg, err)
		} else {
			o.value(report.ProcMaps, arg, "%s", ids)
		}
	}
	o.value(report.PidsVisible, "", "%s", strings.Join(vis, " "))
}

func mappedFiles(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return "", err
	}
	seen := map[string]bool{}
	var ids []string
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || f[4] == "0" {
			continue
		}
		maj, min, _ := strings.Cut(f[3], ":")
		a, _ := strconv.ParseUint(maj, 16, 32)
		c, _ := strconv.ParseUint(min, 16, 32)
		id := fmt.Sprintf("%d:%d:%s", a, c, f[4])
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	return strings.Join(ids, " "), nil
}

// privileges: set-id bits, mounts, devices.
func privileges(o out, nonce string) {
	o.value(report.SetidFiles, "", "%s", setidFiles())
	f := "/tmp/nbs-escape-suid-" + nonce
	fd, err := unix.Open(f, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o755)
	if err != nil {
		o.err(report.Setup, "create the test file", err)
		return
	}
	o.err(report.Chmod, "04755", unix.Chmod(f, 0o4755))
	o.err(report.Chmod, "02755", unix.Chmod(f, 0o2755))
	o.err(report.Fchmod, "04755", unix.Fchmod(fd, 0o4755))
	o.err(report.Fchmodat, "04755", unix.Fchmodat(unix.AT_FDCWD, f, 0o4755, 0))
	p, _ := unix.BytePtrFromString(f)
	_, _, e := unix.Syscall(unix.SYS_CHMOD, uintptr(unsafe.Pointer(p)), 0o4755, 0)
	o.err(report.ChmodSyscall, "04755", errnoOf(e))
	atFDCWD := unix.AT_FDCWD
	_, _, e = unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(atFDCWD), uintptr(unsafe.Pointer(p)), 0o4755, 0, 0, 0)
	o.err(report.Fchmodat2, "04755", errnoOf(e))
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	o.value(report.TestFileMode, "", "%#o", st.Mode&0o7777)
	unix.Close(fd)
	unix.Unlink(f)

	o.err(report.Mknod, "", unix.Mknod("/tmp/nbs-escape-sda-"+nonce, unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	unix.Unlink("/tmp/nbs-escape-sda-" + nonce)
	o.err(report.Chroot, "", unix.Chroot("/tmp"))
	for _, p := range append(storeMounts(), "/", "/bin/sh") {
		remountRW(o, p)
	}
}

// sysSetxattrat is setxattrat's number (Linux 6.13) on every
// architecture; golang.org/x/sys does not name it yet.
const sysSetxattrat = 463

// xattrArgs is struct xattr_args, setxattrat's value argument.
type xattrArgs struct {
	value uint64
	size  uint32
	flags uint32
}

// setxattrat sets name on dirfd/path with the raw system call.
func setxattrat(dirfd int, path string, atFlags int, name string, value []byte) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	args := xattrArgs{value: uint64(uintptr(unsafe.Pointer(&value[0]))), size: uint32(len(value))}
	_, _, e := unix.Syscall6(sysSetxattrat, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(atFlags),
		uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	runtime.KeepAlive(value)
	return errnoOf(e)
}

// xattrs: extended attributes (ACLs, file capabilities) on a file of
// our own, by every call that sets them. Nix's filter fails setxattr,
// lsetxattr and fsetxattr with ENOTSUP; setxattrat is newer than it.
func xattrs(o out, nonce string) {
	f := "/tmp/nbs-escape-xattr-" + nonce
	fd, err := unix.Open(f, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		o.err(report.Setup, "create the xattr test file", err)
		return
	}
	defer unix.Unlink(f)
	defer unix.Close(fd)
	// A v2 file capability granting nothing: magic and version only.
	fcap := []byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, x := range []struct {
		name  string
		value []byte
	}{{report.XattrUser, []byte("1")}, {report.XattrCapability, fcap}} {
		o.err(report.Setxattr, x.name, unix.Setxattr(f, x.name, x.value, 0))
		o.err(report.Lsetxattr, x.name, unix.Lsetxattr(f, x.name, x.value, 0))
		o.err(report.Fsetxattr, x.name, unix.Fsetxattr(fd, x.name, x.value, 0))
		o.err(report.Setxattrat, x.name, setxattrat(unix.AT_FDCWD, f, 0, x.name, x.value))
		o.err(report.SetxattratFD, x.name, setxattrat(fd, "", unix.AT_EMPTY_PATH, x.name, x.value))
	}
}

func errnoOf(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// setidFiles lists the set-user-id and set-group-id files visible.
func setidFiles() string {
	var found []string
	filepath.WalkDir("/", func(p string, d fs.DirEntry, err error) error {
		if p == "/proc" || p == "/sys" {
			return filepath.SkipDir
		}
		if err != nil || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		if info, err := d.Info(); err == nil && info.Mode()&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			found = append(found, p)
		}
		return nil
	})
	if len(found) == 0 {
		return "none"
	}
	return strings.Join(found, " ")
}

// remountRW tries to make the read-only mount at p writable: a classic
// remount without MS_RDONLY (keeping the flags we may not change, so
// that only read-only is at stake) and mount_setattr clearing it.
func remountRW(o out, p string) {
	var sfs unix.Statfs_t
	if err := unix.Statfs(p, &sfs); err != nil {
		o.err(report.Setup, "statfs "+p, err)
		return
	}
	keep := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	o.err(report.Remount, p, unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_BIND|keep, ""))
	attr := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}
	o.err(report.MountSetattr, p, unix.MountSetattr(unix.AT_FDCWD, p, 0, &attr))
	o.err(report.MountSetattrRec, p, unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, &attr))
}

// handles: open_by_handle_at ("shocker") with a forged handle of the
// file system's root (ext4: inode 2), and with the handle of /tmp
// through the /build mount, which is outside that mount's subtree.
func handles(o out) {
	mfd, err := unix.Open("/build", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		o.err(report.Setup, "open /build", err)
		return
	}
	defer unix.Close(mfd)
	// FILEID_INO32_GEN: inode 2, any generation. Tried through every
	// kind of /build: a copy-on-write view of the kept directory (an
	// overlay, which gives no handles of its own, or FUSE, whose handles
	// are its own type) is a way towards the kept directory's file system.
	root := unix.NewFileHandle(1, []byte{2, 0, 0, 0, 0, 0, 0, 0})
	what, err := openHandle(mfd, root)
	o.reached(report.HandleFSRoot, "", what, err)
	tmp, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/tmp", 0)
	if err != nil {
		o.emit(report.Record{Check: report.HandleTmp, Outcome: report.NotTried, Detail: "name_to_handle_at: " + errText(err)})
		return
	}
	what, err = openHandle(mfd, tmp)
	o.reached(report.HandleTmp, "", what, err)
}

// openHandle opens h and lists what it reached.
func openHandle(mfd int, h unix.FileHandle) (string, error) {
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return "", err
	}
	defer unix.Close(fd)
	l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	ns, err := listDir(fmt.Sprintf("/proc/self/fd/%d", fd))
	if err != nil {
		ns = errText(err)
	}
	return l + ": " + ns, nil
}

// procWrites: host-global kernel knobs in /proc. Opened for writing,
// never written.
func procWrites(o out) {
	for _, p := range []string{"/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
		"/proc/sys/vm/drop_caches"} {
		o.err(report.OpenWrite, p, openWrite(p))
	}
}

// runNested re-runs us in a new user and mount namespace, as root of
// it with every capability there: Nix allows nested user namespaces.
func runNested(o out, nonce string) {
	cmd := exec.Command("/proc/self/exe", "nested", nonce)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER | syscall.CLONE_NEWNS,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	o.err(report.NestedUserns, "", cmd.Run())
}

// nested runs in a user namespace of our own, with all capabilities in
// it. The sandbox's mounts were locked when they were copied into this
// less privileged mount namespace: read-only stays read-only, and they
// cannot be unmounted to reveal what is below.
func nested(o out, nonce string) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "CapEff" || k == "Uid") {
			o.value(report.Status, k, "%s", strings.Join(strings.Fields(v), " "))
		}
	}
	// Our mounts stay ours.
	o.err(report.MakeRprivate, "", unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	targets := append(storeMounts(), "/", "/bin/sh")
	for i, p := range targets {
		remountRW(o, p)
		err := unix.Unmount(p, unix.MNT_DETACH)
		o.err(report.Umount, p, err)
		if err == nil {
			// What was below shows now; writing there stays in our
			// private store dir, but the test wants the mount locked.
			o.list(report.Below, p, p)
		}
		// A new bind of the read-only mount is read-only too.
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			continue
		}
		bind := fmt.Sprintf("/tmp/nbs-escape-bind-%s-%d", nonce, i)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			unix.Mkdir(bind, 0o755)
		} else {
			createOnly(bind)
		}
		err = unix.Mount(p, bind, "", unix.MS_BIND|unix.MS_REC, "")
		o.err(report.Bind, p, err)
		if err == nil {
			remountRW(o, bind)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				o.err(report.BindCreate, p, createFile(filepath.Join(bind, "nbs-escape-"+nonce)))
			} else {
				o.err(report.BindOpenWrite, p, openWrite(bind))
			}
			unix.Unmount(bind, unix.MNT_DETACH)
		}
		os.Remove(bind)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			o.err(report.CreateIn, p, createFile(filepath.Join(p, "nbs-escape-"+nonce)))
		} else {
			o.err(report.OpenWrite, p, openWrite(p))
		}
	}
	o.err(report.Mknod, "", unix.Mknod("/tmp/nbs-escape-sda-"+nonce, unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0))))
	unix.Unlink("/tmp/nbs-escape-sda-" + nonce)
	// Root of this namespace may set a namespaced file capability:
	// the filter must stop it here too.
	xattrs(o, nonce)
	handles(o)
	procWrites(o)
	// Last, as it changes our root: the classic chroot escape. The cwd
	// stays outside the new root; ".." from there stops at the root of
	// the mount namespace, which is the sandbox's.
	jail := "/tmp/nbs-escape-chroot-" + nonce
	unix.Mkdir(jail, 0o755)
	defer os.Remove(jail)
	if err := unix.Chdir("/build"); err != nil {
		o.err(report.ChrootEscape, "", err)
		return
	}
	if err := unix.Chroot(jail); err != nil {
		o.err(report.ChrootEscape, "", err)
		return
	}
	for i := 0; i < 64; i++ {
		unix.Chdir("..")
	}
	if err := unix.Chroot("."); err != nil {
		o.err(report.ChrootEscape, "", err)
		return
	}
	o.list(report.ChrootEscape, "", "/")
}

func createOnly(p string) {
	if fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err == nil {
		unix.Close(fd)
	}
}

// signals: the host's processes are out of reach; ptrace reaches only
// sandbox processes.
func signals(o out, host map[string]int) {
	o.value(report.PPid, "", "%d", os.Getppid())
	var roles []string
	for r := range host {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	o.value(report.HostPidsGiven, "", "%s", strings.Join(roles, " "))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, r := range roles {
		pid := host[r]
		o.err(report.HostPidKill0, r, unix.Kill(pid, 0))
		err := unix.PtraceAttach(pid)
		if err == nil {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WALL, nil)
			unix.PtraceDetach(pid)
		}
		o.err(report.HostPidPtrace, r, err)
		fd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			unix.Close(fd)
		}
		o.err(report.HostPidPidfd, r, err)
		_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
		o.err(report.HostPidProc, r, err)
	}

	// A child of our own to trace, besides whatever else is visible.
	sleeper := exec.Command("/proc/self/exe", "sleep")
	if err := sleeper.Start(); err != nil {
		o.err(report.Setup, "start a sleeper", err)
	} else {
		defer func() { sleeper.Process.Kill(); sleeper.Wait() }()
		time.Sleep(100 * time.Millisecond)
	}
	for _, pid := range pids() {
		if pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			exe = errText(err)
		}
		// PTRACE_SEIZE + PTRACE_INTERRUPT stops even PID 1, which
		// ignores the SIGSTOP of PTRACE_ATTACH sent from inside.
		err = unix.PtraceSeize(pid)
		if err == nil {
			err = unix.PtraceInterrupt(pid)
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WALL, nil)
			unix.PtraceDetach(pid)
		}
		o.reached(report.Ptrace, strconv.Itoa(pid), exe, err)
	}
}

// plant leaves symbolic links to a host file in /build and /tmp: nbs
// removes the copy after we are gone and must not follow them.
func plant(o out, canary string) {
	if canary == "" {
		return
	}
	var errs []error
	for _, l := range []struct{ name, target string }{
		{"/build/nbs-escape-link", canary},
		{"/build/nbs-escape-dirlink", filepath.Dir(canary)},
		{"/tmp/nbs-escape-link", canary},
		{"/tmp/nbs-escape-dirlink", filepath.Dir(canary)},
	} {
		errs = append(errs, os.Symlink(l.target, l.name))
	}
	o.err(report.PlantLinks, "", errors.Join(errs...))
}

// killMode: kill(-1, SIGKILL) from PID 1 and from another process of
// the sandbox; both must reach only sandbox processes. Then a process
// that ignores SIGHUP and SIGTERM in a session of its own tries to
// outlive the sandbox, and we exit with -status.
func killMode(o out, args []string) {
	fl := flag.NewFlagSet("kill", flag.ExitOnError)
	code := fl.Int("status", 0, "exit status")
	canaries := fl.String("canary", "", "host pids, comma-separated, of processes of the sandbox's host uid: sent SIGKILL")
	test := fl.Int("test", 0, "host pid of the test: sent signal 0")
	nonce := fl.String("nonce", "x", "marks the lingering process")
	fl.Parse(args)
	o.value(report.Pid, "", "%d", os.Getpid())
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
		o.value(report.UIDMap, "", "%s", strings.Join(strings.Fields(string(b)), " "))
	}

	start := func(args ...string) *exec.Cmd {
		c := exec.Command("/proc/self/exe", args...)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			o.err(report.Setup, "start "+args[0], err)
			return nil
		}
		return c
	}
	killed := func(cs ...*exec.Cmd) string {
		var rs []string
		for _, c := range cs {
			if c == nil {
				continue
			}
			err := c.Wait()
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				rs = append(rs, ee.ProcessState.String())
			} else {
				rs = append(rs, errText(err))
			}
		}
		return strings.Join(rs, ", ")
	}

	s1, s2 := start("sleep"), start("sleep")
	time.Sleep(100 * time.Millisecond)
	if k := start("killall"); k != nil {
		k.Wait()
	}
	o.value(report.KilledFromChild, "", "%s", killed(s1, s2))

	s3 := start("sleep")
	time.Sleep(100 * time.Millisecond)
	o.err(report.KillAll, strconv.Itoa(os.Getpid()), unix.Kill(-1, unix.SIGKILL))
	o.value(report.KilledFromPID1, "", "%s", killed(s3))

	for _, c := range strings.Split(*canaries, ",") {
		if pid, err := strconv.Atoi(c); err == nil {
			o.err(report.KillHostCanary, c, unix.Kill(pid, unix.SIGKILL))
		}
	}
	if *test != 0 {
		o.err(report.KillHostTest, "", unix.Kill(*test, 0))
	}

	l := exec.Command("/proc/self/exe", "linger", "linger-"+*nonce)
	l.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	o.err(report.Linger, "", l.Start())
	os.Stdout.Sync()
	os.Exit(*code)
}

// viewMode checks what /build shows of the kept directory: none of the
// view's host paths (-paths), symlinks that stay symlinks and resolve
// inside the sandbox (-links: /build paths; -follow: those whose
// targets the host has and the sandbox must not), a fifo of its own
// (-fifo), no device (-device), no host socket (-socket); it changes /build in every way (-write,
// a directory in /build), which must not reach the kept directory, and
// tries the host pids given on stdin (the FUSE server's: "fuse=PID").
func viewMode(o out, args []string) {
	fl := flag.NewFlagSet("view", flag.ExitOnError)
	paths := fl.String("paths", "", "comma-separated host paths of the view")
	links := fl.String("links", "", "comma-separated symlinks in /build")
	follow := fl.String("follow", "", "comma-separated symlinks in /build whose targets must not open")
	fifo := fl.String("fifo", "", "a fifo in /build that the test holds open on the host")
	device := fl.String("device", "", "a device node's path in /build")
	socket := fl.String("socket", "", "a unix socket's path in /build that a host process listens on")
	write := fl.String("write", "", "a directory in /build to change")
	fl.Parse(args)
	split := func(s string) []string {
		if s == "" {
			return nil
		}
		return strings.Split(s, ",")
	}
	// The test's line: host pids (ROLE=PID) and the view's host paths
	// (path=P), which it learns once nbs has made them.
	line := readStdinLine(50 * time.Second)
	hosts := split(*paths)
	for _, kv := range strings.Fields(line) {
		if p, ok := strings.CutPrefix(kv, "path="); ok {
			hosts = append(hosts, p)
		}
	}
	for _, p := range hosts {
		_, err := os.Lstat(p)
		o.err(report.ViewPath, p, err)
	}
	for _, l := range split(*links) {
		fi, err := os.Lstat(l)
		switch {
		case err != nil:
			o.err(report.ViewLink, l, err)
		case fi.Mode()&os.ModeSymlink == 0:
			o.value(report.ViewLink, l, "%s", fi.Mode().Type())
		default:
			t, err := os.Readlink(l)
			if err != nil {
				o.err(report.ViewLink, l, err)
			} else {
				o.value(report.ViewLink, l, "symlink %s", t)
			}
		}
		// Where it leads, listed (a directory) as a fact.
		if fi, err := os.Stat(l); err == nil && fi.IsDir() {
			o.list(report.Ls, l+"/", l+"/")
		}
	}
	for _, l := range split(*follow) {
		f, err := os.Open(l)
		if err == nil {
			b := make([]byte, 64)
			n, _ := f.Read(b)
			f.Close()
			o.reached(report.ViewFollow, l, fmt.Sprintf("%q", b[:n]), nil)
			continue
		}
		o.err(report.ViewFollow, l, err)
	}
	if *fifo != "" {
		fd, err := unix.Open(*fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Write(fd, []byte("nbs-escape\n"))
			unix.Close(fd)
		}
		o.err(report.ViewFifoHost, *fifo, err)
	}
	if *device != "" {
		fd, err := unix.Open(*device, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			unix.Close(fd)
		}
		o.err(report.ViewDevice, *device, err)
	}
	if *socket != "" {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err == nil {
			err = unix.Connect(fd, &unix.SockaddrUnix{Name: *socket})
			unix.Close(fd)
		}
		o.err(report.ViewSocket, *socket, err)
	}
	if d := *write; d != "" {
		viewWrites(o, d)
	}
	signals(o, hostPidsIn(line))
}

// viewWrites changes everything in the directory d of /build: each
// change is the sandbox's own, made in its view or copy.
func viewWrites(o out, d string) {
	es, err := os.ReadDir(d)
	if err != nil {
		o.err(report.Setup, "read "+d, err)
		return
	}
	for _, e := range es {
		p := filepath.Join(d, e.Name())
		switch t := e.Type(); {
		case t.IsRegular():
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				_, err = f.WriteString("nbs-escape\n")
				f.Close()
			}
			o.err(report.ViewWrite, "append "+p, err)
			o.err(report.ViewWrite, "chmod "+p, os.Chmod(p, 0o600))
			o.err(report.ViewWrite, "utimes "+p, os.Chtimes(p, time.Unix(1, 0), time.Unix(1, 0)))
			o.err(report.ViewWrite, "rename "+p, os.Rename(p, p+".moved"))
		case t&os.ModeSymlink != 0:
			// Writing through a link writes where it leads, in the
			// sandbox; the link itself is replaced.
			o.err(report.ViewWrite, "remove "+p, os.Remove(p))
			o.err(report.ViewWrite, "symlink "+p, os.Symlink("/nbs-escape", p))
		case t.IsDir():
			o.err(report.ViewWrite, "chmod "+p, os.Chmod(p, 0o700))
			o.err(report.ViewWrite, "create in "+p, createFile(filepath.Join(p, "nbs-escape-new")))
		default:
			o.err(report.ViewWrite, "remove "+p, os.Remove(p))
		}
	}
	o.err(report.ViewWrite, "create "+d, createFile(filepath.Join(d, "nbs-escape-new")))
}
