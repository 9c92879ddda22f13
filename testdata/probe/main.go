// Command probe prints facts about the world it runs in, one sorted
// `key = value` line each, so that two runs can be compared line by line:
// once as the builder inside real Nix's sandbox (testdata/probe/default.nix)
// and once under `nbs shell` on the directory that build kept
// (cmd/nbs/e2e_probe_test.go, issue 4).
//
// It must be a static binary (CGO_ENABLED=0): the sandbox holds nothing
// but the store paths the derivation references. It never aborts: a fact
// it cannot read is printed as `key = error: ENAME`.
//
// What it prints is chosen to be comparable: no device numbers of file
// systems, no host source paths of mounts, no inode numbers, no times.
//
// With NBS_PROBE_EXIT=N in the environment it exits with status N after
// printing, so that the Nix build fails and Nix keeps the directory.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
)

// facts collects the output; keys are unique (a repeated key gets #2…).
type facts map[string]string

func (f facts) set(key, value string) {
	k := key
	for i := 2; ; i++ {
		if _, dup := f[k]; !dup {
			break
		}
		k = fmt.Sprintf("%s#%d", key, i)
	}
	f[k] = value
}

func (f facts) setf(key, format string, args ...any) { f.set(key, fmt.Sprintf(format, args...)) }

// errno is the value printed for a failed call.
func errno(err error) string {
	if err == nil {
		return "ok"
	}
	var en unix.Errno
	if errors.As(err, &en) {
		if name := unix.ErrnoName(en); name != "" {
			return "error: " + name
		}
		return fmt.Sprintf("error: errno %d", int(en))
	}
	return "error: " + err.Error()
}

// setErr sets key to value, or to the error when err is set.
func (f facts) setErr(key, value string, err error) {
	if err != nil {
		f.set(key, errno(err))
		return
	}
	f.set(key, value)
}

func main() {
	f := facts{}
	ids(f)
	status(f)
	syscalls(f)
	uts(f)
	network(f)
	mounts(f)
	for _, d := range []string{"/", "/dev", "/dev/pts", "/dev/shm", "/build", "/tmp", "/etc", "/nix"} {
		listing(f, d)
	}
	etcFiles(f)
	rlimits(f)
	process(f)
	environment(f)
	store(f)
	for _, p := range []string{"/sys", "/dev/kvm", "/bin/sh", "/proc/self"} {
		_, err := os.Lstat(p)
		f.setErr("exists:"+p, "yes", err)
	}

	keys := make([]string, 0, len(f))
	for k := range f {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w := bufio.NewWriter(os.Stdout)
	for _, k := range keys {
		fmt.Fprintf(w, "%s = %s\n", k, f[k])
	}
	w.Flush()
	if n, err := strconv.Atoi(os.Getenv("NBS_PROBE_EXIT")); err == nil {
		os.Exit(n)
	}
}

func ids(f facts) {
	f.setf("id:uid", "%d", os.Getuid())
	f.setf("id:euid", "%d", os.Geteuid())
	f.setf("id:gid", "%d", os.Getgid())
	f.setf("id:egid", "%d", os.Getegid())
	groups, err := unix.Getgroups()
	var gs []string
	for _, g := range groups {
		gs = append(gs, strconv.Itoa(g))
	}
	f.setErr("id:groups", strings.Join(gs, " "), err)
	for _, m := range []string{"uid_map", "gid_map", "setgroups"} {
		b, err := os.ReadFile("/proc/self/" + m)
		f.setErr("proc:"+m, strings.Join(strings.Fields(string(b)), " "), err)
	}
}

// status copies the lines of /proc/self/status that are about the
// process's privileges and signals.
func status(f facts) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		f.set("status", errno(err))
		return
	}
	want := map[string]bool{
		"CapInh": true, "CapPrm": true, "CapEff": true, "CapBnd": true, "CapAmb": true,
		"NoNewPrivs": true, "Seccomp": true, "Seccomp_filters": true,
		"Umask": true, "SigBlk": true, "SigIgn": true, "Groups": true,
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && want[k] {
			f.set("status:"+k, strings.Join(strings.Fields(v), " "))
		}
	}
}

// syscalls tries what Nix's seccomp filter forbids (setuid/setgid bits,
// extended attributes) on a file of our own in $TMPDIR (or the cwd).
func syscalls(f facts) {
	dir := os.Getenv("TMPDIR")
	if dir == "" {
		dir = "."
	}
	name := filepath.Join(dir, ".nbs-probe-syscalls")
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	if err != nil {
		f.set("syscall:create-test-file", errno(err))
		return
	}
	defer unix.Unlink(name)
	defer unix.Close(fd)
	f.set("syscall:chmod-04755", errno(unix.Chmod(name, 0o4755)))
	f.set("syscall:chmod-02755", errno(unix.Chmod(name, 0o2755)))
	f.set("syscall:fchmod-04755", errno(unix.Fchmod(fd, 0o4755)))
	f.set("syscall:fchmodat-02755", errno(unix.Fchmodat(unix.AT_FDCWD, name, 0o2755, 0)))
	f.set("syscall:chmod-0755", errno(unix.Chmod(name, 0o755)))
	f.set("syscall:setxattr", errno(unix.Setxattr(name, "user.nbs", []byte("1"), 0)))
	f.set("syscall:lsetxattr", errno(unix.Lsetxattr(name, "user.nbs", []byte("1"), 0)))
	f.set("syscall:fsetxattr", errno(unix.Fsetxattr(fd, "user.nbs", []byte("1"), 0)))
	buf := make([]byte, 256)
	_, err = unix.Getxattr(name, "user.nbs", buf)
	f.set("syscall:getxattr", errno(err))
	n, err := unix.Listxattr(name, buf)
	if err == nil {
		f.set("syscall:listxattr", fmt.Sprintf("ok %q", strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00")))
	} else {
		f.set("syscall:listxattr", errno(err))
	}
	// Last, as Nix's filter may let it set the attribute that the calls
	// above look for: setxattrat (Linux 6.13) is newer than Nix's list.
	f.set("syscall:setxattrat", errno(setxattrat(name, "user.nbs", []byte("1"))))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err == nil {
		f.setf("syscall:test-file-mode", "%#o", st.Mode&0o7777)
	}
}

// setxattrat sets name on path with the raw system call (463 on every
// architecture; golang.org/x/sys does not name it yet).
func setxattrat(path, name string, value []byte) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	n, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	// struct xattr_args: value pointer, size, flags.
	args := struct {
		value       uint64
		size, flags uint32
	}{value: uint64(uintptr(unsafe.Pointer(&value[0]))), size: uint32(len(value))}
	atFDCWD := unix.AT_FDCWD
	_, _, e := unix.Syscall6(463, uintptr(atFDCWD), uintptr(unsafe.Pointer(p)), 0,
		uintptr(unsafe.Pointer(n)), uintptr(unsafe.Pointer(&args)), unsafe.Sizeof(args))
	runtime.KeepAlive(value)
	if e != 0 {
		return e
	}
	return nil
}

func uts(f facts) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		f.set("uts", errno(err))
		return
	}
	f.set("uts:hostname", unix.ByteSliceToString(u.Nodename[:]))
	f.set("uts:domainname", unix.ByteSliceToString(u.Domainname[:]))
}

func network(f facts) {
	ifs, err := net.Interfaces()
	if err != nil {
		f.set("net:interfaces", errno(err))
		return
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
		f.setf("net:"+i.Name+".flags", "%s mtu=%d hw=%q", i.Flags, i.MTU, i.HardwareAddr.String())
		addrs, err := i.Addrs()
		var as []string
		for _, a := range addrs {
			as = append(as, a.String())
		}
		sort.Strings(as)
		f.setErr("net:"+i.Name+".addrs", strings.Join(as, " "), err)
	}
	sort.Strings(names)
	f.set("net:interfaces", strings.Join(names, " "))
}

// virtualFS are the file systems whose super-block options are printed:
// they are made by the sandbox, unlike those of disk file systems, which
// belong to the host.
var virtualFS = map[string]bool{"proc": true, "devpts": true, "tmpfs": true, "sysfs": true, "mqueue": true, "cgroup": true, "cgroup2": true}

// mounts prints /proc/self/mountinfo by mount point: file system type,
// per-mount options, propagation and, for virtual file systems, the
// super-block options — never device numbers or host source paths.
func mounts(f facts) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		f.set("mount", errno(err))
		return
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		fields := strings.Fields(line)
		sep := -1
		for i, x := range fields {
			if x == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 7 || sep < 6 || len(fields) < sep+4 {
			f.set("mount:unparsed", strconv.Quote(line))
			continue
		}
		n++
		point := unescapeMount(fields[4])
		var opts []string
		for _, o := range strings.Split(fields[5], ",") {
			switch o {
			case "ro", "rw", "nosuid", "nodev", "noexec", "noatime", "nodiratime", "relatime", "strictatime", "nosymfollow":
				opts = append(opts, o)
			}
		}
		var prop []string
		for _, o := range fields[6:sep] {
			tag, _, _ := strings.Cut(o, ":")
			prop = append(prop, tag)
		}
		if len(prop) == 0 {
			prop = []string{"private"}
		}
		fstype := fields[sep+1]
		v := fmt.Sprintf("%s %s %s", fstype, strings.Join(opts, ","), strings.Join(prop, ","))
		if virtualFS[fstype] {
			v += " " + fields[sep+3]
		}
		f.set("mount:"+point, v)
	}
	if n == 0 {
		f.set("mount:/", "error: no mounts")
	}
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// describe is one file's type, mode, owner, device numbers (device
// files) and link target (symlinks).
func describe(p string) string {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return errno(err)
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		typ = "d"
	case unix.S_IFREG:
		typ = "f"
	case unix.S_IFLNK:
		typ = "l"
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	case unix.S_IFIFO:
		typ = "p"
	case unix.S_IFSOCK:
		typ = "s"
	}
	s := fmt.Sprintf("%s %04o %d:%d", typ, st.Mode&0o7777, st.Uid, st.Gid)
	switch typ {
	case "c", "b":
		s += fmt.Sprintf(" dev=%d:%d", unix.Major(uint64(st.Rdev)), unix.Minor(uint64(st.Rdev)))
	case "l":
		t, err := os.Readlink(p)
		if err != nil {
			s += " -> " + errno(err)
		} else {
			s += " -> " + t
		}
	}
	return s
}

// listing prints dir itself and every entry in it (not recursively).
func listing(f facts, dir string) {
	if _, done := f["ls:"+dir]; !done {
		f.set("ls:"+dir, describe(dir))
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.set("ls:"+dir+"/*", errno(err))
		return
	}
	for _, e := range entries {
		f.set("ls:"+filepath.Join(dir, e.Name()), describe(filepath.Join(dir, e.Name())))
	}
}

// etcFiles prints every regular file in /etc, line by line.
func etcFiles(f facts) {
	entries, err := os.ReadDir("/etc")
	if err != nil {
		return
	}
	for _, e := range entries {
		p := filepath.Join("/etc", e.Name())
		if st, err := os.Stat(p); err == nil && !st.Mode().IsRegular() {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			f.set("etc:"+p, errno(err))
			continue
		}
		for i, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
			f.setf(fmt.Sprintf("etc:%s:%03d", p, i+1), "%q", line)
		}
	}
}

var rlimitNames = []struct {
	name string
	res  int
}{
	{"cpu", unix.RLIMIT_CPU}, {"fsize", unix.RLIMIT_FSIZE}, {"data", unix.RLIMIT_DATA},
	{"stack", unix.RLIMIT_STACK}, {"core", unix.RLIMIT_CORE}, {"rss", unix.RLIMIT_RSS},
	{"nproc", unix.RLIMIT_NPROC}, {"nofile", unix.RLIMIT_NOFILE}, {"memlock", unix.RLIMIT_MEMLOCK},
	{"as", unix.RLIMIT_AS}, {"locks", unix.RLIMIT_LOCKS}, {"sigpending", unix.RLIMIT_SIGPENDING},
	{"msgqueue", unix.RLIMIT_MSGQUEUE}, {"nice", unix.RLIMIT_NICE}, {"rtprio", unix.RLIMIT_RTPRIO},
	{"rttime", unix.RLIMIT_RTTIME},
}

func limit(v uint64) string {
	if v == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

func rlimits(f facts) {
	for _, r := range rlimitNames {
		var l unix.Rlimit
		err := unix.Getrlimit(r.res, &l)
		f.setErr("rlimit:"+r.name, limit(l.Cur)+" "+limit(l.Max), err)
	}
	// Go raises its own soft RLIMIT_NOFILE at start-up and restores the
	// inherited one in the processes it starts: ask $SHELL (the
	// derivation's static bash, which is in the sandbox) for the one the
	// probe was given.
	if sh := os.Getenv("SHELL"); sh != "" {
		out, err := exec.Command(sh, "-c", "ulimit -S -n").Output()
		f.setErr("rlimit:nofile.inherited-soft", strings.TrimSpace(string(out)), err)
	}
}

// process prints the process's place in the world: pids, session,
// terminal, descriptors, cwd, personality.
func process(f facts) {
	f.setf("proc:pid", "%d", os.Getpid())
	f.setf("proc:ppid", "%d", os.Getppid())
	sid, err := unix.Getsid(0)
	f.setErr("proc:sid", strconv.Itoa(sid), err)
	pgid, err := unix.Getpgid(0)
	f.setErr("proc:pgid", strconv.Itoa(pgid), err)
	// Field 7 of /proc/self/stat is the controlling terminal (0: none).
	if b, err := os.ReadFile("/proc/self/stat"); err == nil {
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 {
			if fl := strings.Fields(s[i+1:]); len(fl) > 4 {
				f.set("proc:ctty", map[bool]string{true: "none", false: "yes"}[fl[4] == "0"])
			}
		}
	} else {
		f.set("proc:ctty", errno(err))
	}
	b, err := os.ReadFile("/proc/self/personality")
	f.setErr("proc:personality", strings.TrimSpace(string(b)), err)
	b, err = os.ReadFile("/proc/self/oom_score_adj")
	f.setErr("proc:oom_score_adj", strings.TrimSpace(string(b)), err)
	prio, err := unix.Getpriority(unix.PRIO_PROCESS, 0)
	f.setErr("proc:nice", strconv.Itoa(20-prio), err)
	wd, err := os.Getwd()
	f.setErr("proc:cwd", wd, err)
	for fd := 0; fd <= 2; fd++ {
		_, err := unix.IoctlGetTermios(fd, unix.TCGETS)
		f.set(fmt.Sprintf("fd:%d.tty", fd), map[bool]string{true: "yes", false: "no"}[err == nil])
	}
	t, err := os.Readlink("/proc/self/fd/0")
	f.setErr("fd:0.target", t, err)
	// Nix's builder has no controlling terminal: /dev/tty gives ENXIO.
	if fd, err := unix.Open("/dev/tty", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0); err == nil {
		unix.Close(fd)
		f.set("fd:open-dev-tty", "ok")
	} else {
		f.set("fd:open-dev-tty", errno(err))
	}
	fds(f)
	exe, err := os.Readlink("/proc/self/exe")
	f.setErr("proc:exe", exe, err)
}

var inodeRE = regexp.MustCompile(`\[\d+\]`)

// fds lists the open descriptors. Targets of 1 and 2 are left out: they
// are the caller's (Nix's log, the file the builder redirected to, or
// nbs's caller's); others are printed with inode numbers removed.
func fds(f facts) {
	// Read the directory with a descriptor we know, to leave it out.
	dfd, err := unix.Open("/proc/self/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		f.set("fd:list", errno(err))
		return
	}
	d := os.NewFile(uintptr(dfd), "/proc/self/fd")
	names, err := d.Readdirnames(-1)
	d.Close()
	if err != nil {
		f.set("fd:list", errno(err))
		return
	}
	var open []int
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd == dfd {
			continue
		}
		open = append(open, fd)
	}
	sort.Ints(open)
	var list []string
	for _, fd := range open {
		list = append(list, strconv.Itoa(fd))
		if fd <= 2 {
			continue
		}
		t, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
		if err != nil && errors.Is(err, fs.ErrNotExist) {
			continue // closed meanwhile (the Go runtime's own)
		}
		f.setErr(fmt.Sprintf("fd:%d.target", fd), inodeRE.ReplaceAllString(t, "[N]"), err)
	}
	f.set("fd:list", strings.Join(list, " "))
}

func environment(f facts) {
	for _, kv := range os.Environ() {
		k, v, _ := strings.Cut(kv, "=")
		f.set("env:"+k, strconv.Quote(v))
	}
}

// storeHash is the hash part of a store path's name.
var storeHash = regexp.MustCompile(`^[0-9a-df-np-sv-z]{32}-`)

// store prints which store paths are visible (names without hashes) and
// whether the store and an input path can be written to.
func store(f facts) {
	const dir = "/nix/store"
	f.set("store:dir", describe(dir))
	entries, err := os.ReadDir(dir)
	if err != nil {
		f.set("store:count", errno(err))
	} else {
		f.setf("store:count", "%d", len(entries))
		for _, e := range entries {
			f.set("store:"+storeHash.ReplaceAllString(e.Name(), ""), describe(filepath.Join(dir, e.Name())))
		}
	}
	// Nix makes the store directory writable for the build group, so
	// that $out can be created.
	p := filepath.Join(dir, ".nbs-probe-write-test")
	fd, err := unix.Open(p, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_CLOEXEC, 0o644)
	f.set("store:create-file", errno(err))
	if err == nil {
		unix.Close(fd)
		f.set("store:remove-file", errno(unix.Unlink(p)))
	}
	// Inputs must not be writable. $SHELL is one (the probe itself would
	// answer ETXTBSY). Opening without O_TRUNC changes nothing even where
	// it succeeds.
	if exe := os.Getenv("SHELL"); strings.HasPrefix(exe, dir+"/") {
		fd, err := unix.Open(exe, unix.O_WRONLY|unix.O_CLOEXEC, 0)
		f.set("store:input-open-write", errno(err))
		if err == nil {
			unix.Close(fd)
		}
		// chmod to the mode it already has: a no-op where it succeeds.
		var st unix.Stat_t
		if err := unix.Stat(exe, &st); err == nil {
			f.set("store:input-chmod", errno(unix.Chmod(exe, st.Mode&0o7777)))
		}
	}
	// A directory input (Nix binds those, where it hard-links or binds
	// files, depending on the version).
	if in := os.Getenv("NBS_PROBE_INPUT_DIR"); strings.HasPrefix(in, dir+"/") {
		f.set("store:input-dir", describe(in))
		p := filepath.Join(in, ".nbs-probe-write-test")
		err := unix.Mkdir(p, 0o755)
		f.set("store:input-dir-mkdir", errno(err))
		if err == nil {
			unix.Rmdir(p)
		}
	}
}
