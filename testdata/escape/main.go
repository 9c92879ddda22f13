// Command escape tries, from inside an nbs sandbox, to break out of it:
// write to the store, reach the network, inject keystrokes into the
// user's terminal, write the nbs binary, see host files, gain privileges
// and signal or trace processes outside (issue 5, containment). The end-
// to-end test cmd/nbs/e2e_containment_test.go puts it into a copy of a
// kept build directory, runs it as /build/escape under `nbs shell` and
// asserts that every attempt failed.
//
// It prints one `attempt = result` line per attempt; the result is "ok"
// (possibly followed by what was reached) or the errno's name (EROFS,
// EPERM, …). It never aborts on a blocked attempt and exits 0 (the kill
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
)

// out prints the result lines; nested prefixes them with "nested ".
type out struct{ prefix string }

func (o out) say(key, format string, args ...any) {
	v := fmt.Sprintf(format, args...)
	v = strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(v)
	fmt.Fprintf(os.Stdout, "%s%s = %s\n", o.prefix, key, v)
}

// res is the printed result of a call: "ok" or the errno's name.
func res(err error) string {
	if err == nil {
		return "ok"
	}
	var en unix.Errno
	if errors.As(err, &en) {
		if n := unix.ErrnoName(en); n != "" {
			return n
		}
		return fmt.Sprintf("errno %d", int(en))
	}
	return "error: " + err.Error()
}

const payload = "echo INJECTED\n"

func main() {
	// First, before the Go runtime opens anything of its own: the
	// descriptors the sandbox handed us.
	fds := inheritedFDs()
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: escape probe|nested|tty|kill|killall|sleep|linger")
		os.Exit(2)
	}
	// Nothing here may hang the sandbox (and with it the test).
	if m := os.Args[1]; m != "sleep" && m != "linger" {
		time.AfterFunc(60*time.Second, func() {
			out{}.say("watchdog "+m, "timeout")
			os.Exit(3)
		})
	}
	o := out{}
	switch os.Args[1] {
	case "probe":
		probe(o, fds, os.Args[2:])
	case "nested":
		nested(out{prefix: "nested "}, os.Args[2])
	case "tty":
		ttyAttempts(o)
	case "kill":
		killMode(o, os.Args[2:])
	case "killall":
		o.say(fmt.Sprintf("kill -1 from pid %d", os.Getpid()), "%s", res(unix.Kill(-1, unix.SIGKILL)))
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
func inheritedFDs() []string {
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return []string{"error " + res(err)}
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
	var fds []string
	for _, n := range names {
		if n == strconv.Itoa(dfd) {
			continue
		}
		target, _ := os.Readlink("/proc/self/fd/" + n)
		fds = append(fds, n+" "+target)
	}
	sort.Slice(fds, func(i, j int) bool { return atoi(fds[i]) < atoi(fds[j]) })
	return fds
}

func atoi(s string) int {
	n, _ := strconv.Atoi(strings.Fields(s + " x")[0])
	return n
}

type probeFlags struct {
	port, udpPort int
	abstract      string
	marker        string
	canary        string
	nonce         string
}

func probe(o out, fds []string, args []string) {
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
	hostPids := readHostPids()

	// Inherited descriptors: only stdin, stdout and stderr (Nix's
	// closeExtraFDs); a leaked directory descriptor is a way out.
	var nums []string
	for _, fd := range fds {
		nums = append(nums, strings.Fields(fd)[0])
		if atoi(fd) > 2 {
			o.say("fd "+strings.Fields(fd)[0], "%s", fd)
		}
	}
	o.say("fds", "%s", strings.Join(nums, " "))

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

func readHostPids() map[string]int {
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		line <- s
	}()
	pids := map[string]int{}
	select {
	case s := <-line:
		for _, kv := range strings.Fields(s) {
			k, v, _ := strings.Cut(kv, "=")
			if n, err := strconv.Atoi(v); err == nil {
				pids[k] = n
			}
		}
	case <-time.After(5 * time.Second):
	}
	return pids
}

// status: no capabilities, no_new_privs, the seccomp filter.
func status(o out) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		o.say("status", "%s", res(err))
		return
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		switch k {
		case "Uid", "Gid", "CapInh", "CapPrm", "CapEff", "CapAmb", "NoNewPrivs", "Seccomp", "NSpid":
			if ok {
				o.say("status "+k, "%s", strings.Join(strings.Fields(v), " "))
			}
		}
	}
	o.say("setresuid 0", "%s", res(unix.Setresuid(0, 0, 0)))
	o.say("setresgid 0", "%s", res(unix.Setresgid(0, 0, 0)))
}

func listDir(p string) string {
	es, err := os.ReadDir(p)
	if err != nil {
		return res(err)
	}
	var ns []string
	for _, e := range es {
		ns = append(ns, e.Name())
	}
	return strings.Join(ns, " ")
}

// hostPaths: nothing of the host outside the mount plan is visible.
func hostPaths(o out, marker string) {
	o.say("ls /", "%s", listDir("/"))
	o.say("ls /tmp", "%s", listDir("/tmp"))
	paths := []string{"/home", "/root", "/etc/shadow", "/var", "/usr", "/sys", "/run", "/boot",
		"/lib", "/lib64", "/opt", "/srv", "/mnt", "/media", "/nix/var", "/etc/nix", "/etc/ssh", "/proc/1/root/home"}
	if marker != "" {
		paths = append(paths, "/tmp/"+marker)
	}
	for _, p := range paths {
		_, err := os.Lstat(p)
		o.say("host "+p, "%s", res(err))
	}
	// /proc/1/root is the sandbox's root, not the host's.
	l, err := os.Readlink("/proc/1/root")
	if err != nil {
		l = res(err)
	}
	o.say("proc 1 root", "%s", l)
	o.say("ls /proc/1/root", "%s", listDir("/proc/1/root"))
	var a, b unix.Stat_t
	if err := unix.Stat("/proc/1/root/.", &a); err != nil {
		o.say("proc 1 root is /", "%s", res(err))
	} else if err := unix.Stat("/", &b); err != nil {
		o.say("proc 1 root is /", "%s", res(err))
	} else {
		o.say("proc 1 root is /", "%v", a.Dev == b.Dev && a.Ino == b.Ino)
	}
	// Going up from / stays at /.
	o.say("ls /../../..", "%s", listDir("/../../.."))
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
		o.say("mountinfo", "%s", res(err))
		return
	}
	for _, m := range ms {
		o.say("mount "+m.point, "%s %s", m.fstype, m.opts)
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
		o.say("store", "%s", res(err))
		return
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	o.say("store entries", "%s", strings.Join(names, " "))
	for _, n := range names {
		p := "/nix/store/" + n
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			o.say("store "+n+" lstat", "%s", res(err))
			continue
		}
		var sfs unix.Statfs_t
		if err := unix.Statfs(p, &sfs); err != nil {
			o.say("store "+n+" statfs", "%s", res(err))
		} else if sfs.Flags&unix.ST_RDONLY != 0 {
			o.say("store "+n+" mount", "ro")
		} else {
			o.say("store "+n+" mount", "rw")
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			o.say("store "+n+" create", "%s", res(createFile(filepath.Join(p, "nbs-escape-"+nonce))))
			o.say("store "+n+" mkdir", "%s", res(mkdirOnce(filepath.Join(p, "nbs-escape-dir-"+nonce))))
			if file := firstFile(p); file != "" {
				o.say("store "+n+" open-write file", "%s", res(openWrite(file)))
				o.say("store "+n+" link file", "%s", res(linkOnce(file, "/nix/store/nbs-escape-link-"+nonce)))
			}
		case unix.S_IFREG:
			o.say("store "+n+" open-write", "%s", res(openWrite(p)))
			o.say("store "+n+" link", "%s", res(linkOnce(p, "/nix/store/nbs-escape-link-"+nonce)))
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			// The mode it already has: harmless if it went through.
			o.say("store "+n+" chmod", "%s", res(unix.Chmod(p, st.Mode&0o7777)))
			o.say("store "+n+" utimes", "%s", res(unix.UtimesNano(p, []unix.Timespec{
				unix.NsecToTimespec(st.Atim.Nano()), unix.NsecToTimespec(st.Mtim.Nano())})))
		}
		moved := p + "-nbs-escape-moved"
		err := unix.Rename(p, moved)
		if err == nil {
			unix.Rename(moved, p)
		}
		o.say("store "+n+" rename", "%s", res(err))
		o.say("store "+n+" writable", "%s", writable(p))
	}
	// By design: Nix's store dir is writable for $out; ours is private.
	o.say("store dir mkdir", "%s", res(os.Mkdir("/nix/store/nbs-escape-"+nonce, 0o755)))
	o.say("ls /nix", "%s", listDir("/nix"))
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
		o.say("net interfaces", "%s", res(err))
	} else {
		var ns []string
		for _, i := range ifs {
			ns = append(ns, i.Name)
		}
		o.say("net interfaces", "%s", strings.Join(ns, " "))
	}
	if b, err := os.ReadFile("/proc/net/route"); err != nil {
		o.say("net routes v4", "%s", res(err))
	} else {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		o.say("net routes v4", "%d", len(lines)-1)
	}
	if b, err := os.ReadFile("/proc/net/ipv6_route"); err != nil {
		o.say("net routes v6 not via lo", "%s", res(err))
	} else {
		n := 0
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if fs := strings.Fields(l); len(fs) > 0 && fs[len(fs)-1] != "lo" {
				n++
			}
		}
		o.say("net routes v6 not via lo", "%d", n)
	}
	if ip, err := exec.LookPath("ip"); err != nil {
		o.say("ip route", "%s", res(err))
	} else {
		b, err := exec.Command(ip, "route").CombinedOutput()
		if err != nil {
			o.say("ip route", "%s: %s", res(err), b)
		} else {
			o.say("ip route", "%s", strings.TrimSpace(string(b)))
		}
	}

	if f.port != 0 {
		r, _ := connectTCP(unix.AF_INET, &unix.SockaddrInet4{Port: f.port, Addr: [4]byte{127, 0, 0, 1}})
		o.say(fmt.Sprintf("net tcp 127.0.0.1:%d", f.port), "%s", r)
		r, _ = connectTCP(unix.AF_INET6, &unix.SockaddrInet6{Port: f.port, Addr: [16]byte{15: 1}})
		o.say(fmt.Sprintf("net tcp [::1]:%d", f.port), "%s", r)
	}
	if f.udpPort != 0 {
		o.say(fmt.Sprintf("net udp 127.0.0.1:%d", f.udpPort), "%s",
			res(sendUDP(&unix.SockaddrInet4{Port: f.udpPort, Addr: [4]byte{127, 0, 0, 1}})))
	}
	// TEST-NET-1 (RFC 5737), the discard port: with no route no packet
	// can leave, and connect must say so at once.
	r, d := connectTCP(unix.AF_INET, &unix.SockaddrInet4{Port: 9, Addr: [4]byte{192, 0, 2, 1}})
	o.say("net tcp 192.0.2.1:9", "%s", r)
	o.say("net tcp 192.0.2.1:9 immediate", "%v", d < time.Second)
	o.say("net udp 192.0.2.1:9", "%s", res(sendUDP(&unix.SockaddrInet4{Port: 9, Addr: [4]byte{192, 0, 2, 1}})))
	// Abstract unix sockets belong to the network namespace.
	if f.abstract != "" {
		o.say("net unix @"+f.abstract, "%s", res(connectUnix("@"+f.abstract)))
	}
	o.say("net unix nix-daemon", "%s", res(connectUnix("/nix/var/nix/daemon-socket/socket")))
}

// connectTCP connects without blocking for more than 3 seconds.
func connectTCP(family int, sa unix.Sockaddr) (string, time.Duration) {
	start := time.Now()
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return res(err), 0
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
			return "timeout", time.Since(start)
		default:
			soerr, gerr := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
			err = gerr
			if gerr == nil && soerr != 0 {
				err = unix.Errno(soerr)
			}
		}
	}
	return res(err), time.Since(start)
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
			return res(err)
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
		o.say(fmt.Sprintf("tty fd %d", fd), "%s", kind(fd))
	}
	for fd := 0; fd <= 2; fd++ {
		o.say(fmt.Sprintf("tty fd %d TIOCSCTTY steal", fd), "%s", res(unix.IoctlSetInt(fd, unix.TIOCSCTTY, 1)))
	}
	ok := 0
	for fd := 0; fd <= 2; fd++ {
		err := inject(fd)
		if err == nil {
			ok++
		}
		o.say(fmt.Sprintf("tty inject fd %d", fd), "%s", res(err))
	}
	tty, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOCTTY, 0)
	if err != nil {
		o.say("tty inject /dev/tty", "%s", res(err))
	} else {
		err := inject(tty)
		if err == nil {
			ok++
		}
		o.say("tty inject /dev/tty", "%s", res(err))
		unix.Close(tty)
	}
	o.say("tty injections accepted", "%d", ok)
	if kind(0) == "sandbox pty" {
		o.say("tty own queue", "%d", drainCount(0))
		// Give nbs's relay time to pass our last line on before we
		// exit (it can lose output written just before the end).
		time.Sleep(300 * time.Millisecond)
	} else {
		o.say("tty own queue", "not drained")
	}
}

// ptmx: /dev/ptmx is a character device (the assignment's test lists
// /dev for one) that allocates in the sandbox's own devpts instance: the
// new pty's device must be that of /dev/pts inside, which the test
// compares with the host's devpts.
func ptmx(o out) {
	var st unix.Stat_t
	if err := unix.Lstat("/dev/ptmx", &st); err != nil {
		o.say("ptmx type", "%s", res(err))
	} else if st.Mode&unix.S_IFMT != unix.S_IFCHR {
		o.say("ptmx type", "mode %#o, not a character device", st.Mode)
	} else {
		o.say("ptmx type", "char %d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
	}
	m, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		o.say("ptmx pty devpts", "%s", res(err))
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
		o.say("ptmx pty devpts", "%s", res(err))
		return
	}
	o.say("ptmx pty devpts", "%d:%d", unix.Major(ps.Dev), unix.Minor(ps.Dev))
	in := unix.Stat("/dev/pts", &pts) == nil && pts.Dev == ps.Dev &&
		unix.Stat(fmt.Sprintf("/dev/pts/%d", n), &named) == nil && named.Rdev == ps.Rdev
	o.say("ptmx pty in /dev/pts", "%v", in)
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
		key := fmt.Sprintf("proc %d", pid)
		link, err := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if err != nil {
			link = res(err)
		}
		var st unix.Stat_t
		if err := unix.Stat(fmt.Sprintf("/proc/%d/exe", pid), &st); err != nil {
			o.say(key+" exe", "%s %s", link, res(err))
		} else {
			o.say(key+" exe", "%s %d:%d:%d", link, unix.Major(st.Dev), unix.Minor(st.Dev), st.Ino)
		}
		for _, mode := range []struct {
			name string
			flag int
		}{{"write", unix.O_WRONLY}, {"rdwr", unix.O_RDWR}, {"append", unix.O_WRONLY | unix.O_APPEND}} {
			fd, err := unix.Open(fmt.Sprintf("/proc/%d/exe", pid), mode.flag|unix.O_CLOEXEC, 0)
			if err == nil {
				unix.Close(fd) // never written
			}
			o.say(key+" exe "+mode.name, "%s", res(err))
		}
		o.say(key+" maps", "%s", mappedFiles(pid))
	}
	o.say("pids visible", "%s", strings.Join(vis, " "))
}

func mappedFiles(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/maps", pid))
	if err != nil {
		return res(err)
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
	return strings.Join(ids, " ")
}

// privileges: set-id bits, mounts, devices.
func privileges(o out, nonce string) {
	o.say("setid files", "%s", setidFiles())
	f := "/tmp/nbs-escape-suid-" + nonce
	fd, err := unix.Open(f, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o755)
	if err != nil {
		o.say("create test file", "%s", res(err))
		return
	}
	o.say("chmod 04755", "%s", res(unix.Chmod(f, 0o4755)))
	o.say("chmod 02755", "%s", res(unix.Chmod(f, 0o2755)))
	o.say("fchmod 04755", "%s", res(unix.Fchmod(fd, 0o4755)))
	o.say("fchmodat 04755", "%s", res(unix.Fchmodat(unix.AT_FDCWD, f, 0o4755, 0)))
	p, _ := unix.BytePtrFromString(f)
	_, _, e := unix.Syscall(unix.SYS_CHMOD, uintptr(unsafe.Pointer(p)), 0o4755, 0)
	o.say("chmod syscall 04755", "%s", res(errnoOf(e)))
	atFDCWD := unix.AT_FDCWD
	_, _, e = unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(atFDCWD), uintptr(unsafe.Pointer(p)), 0o4755, 0, 0, 0)
	o.say("fchmodat2 04755", "%s", res(errnoOf(e)))
	var st unix.Stat_t
	unix.Fstat(fd, &st)
	o.say("test file mode", "%#o", st.Mode&0o7777)
	unix.Close(fd)
	unix.Unlink(f)

	o.say("mknod block device", "%s", res(unix.Mknod("/tmp/nbs-escape-sda-"+nonce, unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0)))))
	unix.Unlink("/tmp/nbs-escape-sda-" + nonce)
	o.say("chroot", "%s", res(unix.Chroot("/tmp")))
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
		o.say("xattr test file", "%s", res(err))
		return
	}
	defer unix.Unlink(f)
	defer unix.Close(fd)
	// A v2 file capability granting nothing: magic and version only.
	fcap := []byte{0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	for _, x := range []struct {
		name  string
		value []byte
	}{{"user.nbs", []byte("1")}, {"security.capability", fcap}} {
		o.say("setxattr "+x.name, "%s", res(unix.Setxattr(f, x.name, x.value, 0)))
		o.say("lsetxattr "+x.name, "%s", res(unix.Lsetxattr(f, x.name, x.value, 0)))
		o.say("fsetxattr "+x.name, "%s", res(unix.Fsetxattr(fd, x.name, x.value, 0)))
		o.say("setxattrat "+x.name, "%s", res(setxattrat(unix.AT_FDCWD, f, 0, x.name, x.value)))
		o.say("setxattrat fd "+x.name, "%s", res(setxattrat(fd, "", unix.AT_EMPTY_PATH, x.name, x.value)))
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
		o.say("remount rw "+p, "%s", res(err))
		return
	}
	keep := uintptr(sfs.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	o.say("remount rw "+p, "%s", res(unix.Mount("", p, "", unix.MS_REMOUNT|unix.MS_BIND|keep, "")))
	attr := unix.MountAttr{Attr_clr: unix.MOUNT_ATTR_RDONLY}
	o.say("mount_setattr -ro "+p, "%s", res(unix.MountSetattr(unix.AT_FDCWD, p, 0, &attr)))
	o.say("mount_setattr -ro recursive "+p, "%s", res(unix.MountSetattr(unix.AT_FDCWD, p, unix.AT_RECURSIVE, &attr)))
}

// handles: open_by_handle_at ("shocker") with a forged handle of the
// file system's root (ext4: inode 2), and with the handle of /tmp
// through the /build mount, which is outside that mount's subtree.
func handles(o out) {
	mfd, err := unix.Open("/build", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		o.say("open_by_handle_at", "%s", res(err))
		return
	}
	defer unix.Close(mfd)
	own, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/build", 0)
	if err != nil {
		o.say("name_to_handle_at /build", "%s", res(err))
	} else if own.Type() == 1 && own.Size() == 8 {
		// FILEID_INO32_GEN: inode 2, any generation.
		root := unix.NewFileHandle(1, []byte{2, 0, 0, 0, 0, 0, 0, 0})
		o.say("open_by_handle_at fs root", "%s", openHandle(mfd, root))
	} else {
		o.say("open_by_handle_at fs root", "not tried (handle type %d)", own.Type())
	}
	tmp, _, err := unix.NameToHandleAt(unix.AT_FDCWD, "/tmp", 0)
	if err != nil {
		o.say("open_by_handle_at /tmp via /build", "name_to_handle_at: %s", res(err))
		return
	}
	o.say("open_by_handle_at /tmp via /build", "%s", openHandle(mfd, tmp))
}

func openHandle(mfd int, h unix.FileHandle) string {
	fd, err := unix.OpenByHandleAt(mfd, h, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	if err != nil {
		return res(err)
	}
	defer unix.Close(fd)
	l, _ := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	return "ok: " + l + ": " + listDir(fmt.Sprintf("/proc/self/fd/%d", fd))
}

// procWrites: host-global kernel knobs in /proc. Opened for writing,
// never written.
func procWrites(o out) {
	for _, p := range []string{"/proc/sysrq-trigger", "/proc/sys/kernel/core_pattern", "/proc/sys/kernel/modprobe",
		"/proc/sys/vm/drop_caches"} {
		o.say("open-write "+p, "%s", res(openWrite(p)))
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
	o.say("nested userns", "%s", res(cmd.Run()))
}

// nested runs in a user namespace of our own, with all capabilities in
// it. The sandbox's mounts were locked when they were copied into this
// less privileged mount namespace: read-only stays read-only, and they
// cannot be unmounted to reveal what is below.
func nested(o out, nonce string) {
	b, _ := os.ReadFile("/proc/self/status")
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && (k == "CapEff" || k == "Uid") {
			o.say("status "+k, "%s", strings.Join(strings.Fields(v), " "))
		}
	}
	// Our mounts stay ours.
	o.say("make-rprivate /", "%s", res(unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")))
	targets := append(storeMounts(), "/", "/bin/sh")
	for i, p := range targets {
		remountRW(o, p)
		err := unix.Unmount(p, unix.MNT_DETACH)
		o.say("umount "+p, "%s", res(err))
		if err == nil {
			// What was below shows now; writing there stays in our
			// private store dir, but the test wants the mount locked.
			o.say("below "+p, "%s", listDir(p))
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
		o.say("bind "+p, "%s", res(err))
		if err == nil {
			remountRW(o, bind)
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				o.say("bind "+p+" create", "%s", res(createFile(filepath.Join(bind, "nbs-escape-"+nonce))))
			} else {
				o.say("bind "+p+" open-write", "%s", res(openWrite(bind)))
			}
			unix.Unmount(bind, unix.MNT_DETACH)
		}
		os.Remove(bind)
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			o.say("create in "+p, "%s", res(createFile(filepath.Join(p, "nbs-escape-"+nonce))))
		} else {
			o.say("open-write "+p, "%s", res(openWrite(p)))
		}
	}
	o.say("mknod block device", "%s", res(unix.Mknod("/tmp/nbs-escape-sda-"+nonce, unix.S_IFBLK|0o600, int(unix.Mkdev(8, 0)))))
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
		o.say("chroot escape", "%s", res(err))
		return
	}
	if err := unix.Chroot(jail); err != nil {
		o.say("chroot escape", "%s", res(err))
		return
	}
	for i := 0; i < 64; i++ {
		unix.Chdir("..")
	}
	if err := unix.Chroot("."); err != nil {
		o.say("chroot escape", "%s", res(err))
		return
	}
	o.say("chroot escape", "%s", listDir("/"))
}

func createOnly(p string) {
	if fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_CLOEXEC, 0o644); err == nil {
		unix.Close(fd)
	}
}

// signals: the host's processes are out of reach; ptrace reaches only
// sandbox processes.
func signals(o out, host map[string]int) {
	o.say("ppid", "%d", os.Getppid())
	var roles []string
	for r := range host {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	o.say("host pids given", "%s", strings.Join(roles, " "))
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for _, r := range roles {
		pid := host[r]
		key := "host pid " + r
		o.say(key+" kill 0", "%s", res(unix.Kill(pid, 0)))
		err := unix.PtraceAttach(pid)
		if err == nil {
			var ws unix.WaitStatus
			unix.Wait4(pid, &ws, unix.WALL, nil)
			unix.PtraceDetach(pid)
		}
		o.say(key+" ptrace attach", "%s", res(err))
		fd, err := unix.PidfdOpen(pid, 0)
		if err == nil {
			unix.Close(fd)
		}
		o.say(key+" pidfd_open", "%s", res(err))
		_, err = os.Stat(fmt.Sprintf("/proc/%d", pid))
		o.say(key+" /proc", "%s", res(err))
	}

	// A child of our own to trace, besides whatever else is visible.
	sleeper := exec.Command("/proc/self/exe", "sleep")
	if err := sleeper.Start(); err != nil {
		o.say("start sleeper", "%s", res(err))
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
			exe = res(err)
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
		r := res(err)
		if err == nil {
			r = "ok: " + exe
		}
		o.say(fmt.Sprintf("ptrace %d", pid), "%s", r)
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
	o.say("plant links", "%s", res(errors.Join(errs...)))
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
	o.say("pid", "%d", os.Getpid())
	if b, err := os.ReadFile("/proc/self/uid_map"); err == nil {
		o.say("uid_map", "%s", strings.Join(strings.Fields(string(b)), " "))
	}

	start := func(args ...string) *exec.Cmd {
		c := exec.Command("/proc/self/exe", args...)
		c.Stdout, c.Stderr = os.Stdout, os.Stderr
		if err := c.Start(); err != nil {
			o.say("start "+args[0], "%s", res(err))
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
				rs = append(rs, res(err))
			}
		}
		return strings.Join(rs, ", ")
	}

	s1, s2 := start("sleep"), start("sleep")
	time.Sleep(100 * time.Millisecond)
	if k := start("killall"); k != nil {
		k.Wait()
	}
	o.say("sleepers after kill -1 from a child", "%s", killed(s1, s2))

	s3 := start("sleep")
	time.Sleep(100 * time.Millisecond)
	o.say("kill -1 from pid 1", "%s", res(unix.Kill(-1, unix.SIGKILL)))
	o.say("sleeper after kill -1 from pid 1", "%s", killed(s3))

	for _, c := range strings.Split(*canaries, ",") {
		if pid, err := strconv.Atoi(c); err == nil {
			o.say("kill host canary "+c, "%s", res(unix.Kill(pid, unix.SIGKILL)))
		}
	}
	if *test != 0 {
		o.say("kill 0 host test", "%s", res(unix.Kill(*test, 0)))
	}

	l := exec.Command("/proc/self/exe", "linger", "linger-"+*nonce)
	l.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	o.say("linger", "%s", res(l.Start()))
	os.Stdout.Sync()
	os.Exit(*code)
}
