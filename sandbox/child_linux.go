package sandbox

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/nix-build-shell/nbs/sandbox/term"
	"golang.org/x/sys/unix"
)

// childArg0 is argv[0] of the re-executed nbs that sets the sandbox up.
// The role is chosen from it before the CLI runs.
const childArg0 = "nbs-sandbox-child"

// The child's inherited descriptors (exec.Cmd.ExtraFiles start at 3).
const (
	specFD = 3 // parent → child: the spec as JSON, then EOF
	errFD  = 4 // child → parent: a childError as JSON; close-on-exec, so EOF means execve succeeded
	ptyFD  = 5 // child → parent: the pty master, as SCM_RIGHTS (spec.TTY only)
	// spec.Attach only: the running build's mount namespace, root and
	// current directory (its /proc/PID/ns/mnt, root and cwd).
	mntFD  = 6
	rootFD = 7
	cwdFD  = 8
	toolFD = 9 // the first of spec.Tools
)

// rcFD is where the interactive shell finds spec.RC (bash --rcfile /dev/fd/3).
const rcFD = 3

// IsChild reports whether this process is the sandbox child (or the
// namespace probe, see probeArg0).
func IsChild() bool {
	return len(os.Args) > 0 && (os.Args[0] == childArg0 || os.Args[0] == probeArg0)
}

// childError is how a failed set-up step travels to the parent.
type childError struct {
	Step string `json:"step"`
	Err  string `json:"err"`
}

// ChildMain sets the sandbox up and execs the command. It never returns:
// on failure it reports the step on errFD and exits 127.
func ChildMain() {
	if os.Args[0] == probeArg0 {
		probeMain()
	}
	// Capabilities, no_new_privs and seccomp are per thread: everything
	// runs on this one thread, which ends in execve.
	runtime.LockOSThread()
	step, err := runChild() // returns only when a step failed
	b, _ := json.Marshal(childError{Step: step, Err: err.Error()})
	if _, werr := unix.Write(errFD, b); werr != nil {
		fmt.Fprintf(os.Stderr, "nbs: sandbox set-up: %s: %v\n", step, err)
	}
	os.Exit(127)
}

// runChild runs the set-up steps in Nix's order (runChild in
// derivation-builder.cc): network, UTS, mounts, pivot_root, then the
// per-process state, and finally execve. It returns only on failure.
func runChild() (string, error) {
	sp, err := readSpec()
	if err != nil {
		return "read spec", err
	}
	steps := []struct {
		name string
		run  func(*spec) error
		// sandboxOnly steps are skipped for spec.Unsandboxed; mountNS
		// ones (an unsandboxed build's mounts) for spec.NoNamespaces,
		// which runs only the per-process steps.
		sandboxOnly, mountNS bool
		// attach steps are the only ones run for Spec.Attach: the
		// build being entered has its namespaces and mounts already.
		attach bool
	}{
		{"bring up loopback", setupLoopback, true, false, false},
		{"set host name", setupUTS, true, false, false},
		{"make mounts private", makeMountsPrivate, false, true, false},
		{viewStep, mountView, false, true, false},
		{"mount new root", mountRoot, true, false, false},
		{"apply mount plan", applyPlan, false, true, false},
		{"pivot_root", pivotRoot, true, false, false},
		{"make / read-only", readOnlyRoot, true, false, false},
		{"enter the build's mounts", enterBuildMounts, false, false, true},
		{"find command", findCommand, false, false, true},
		{"set up terminal", setupTTY, false, false, true},
		{"exec", execCommand, false, false, true},
	}
	for _, s := range steps {
		if s.sandboxOnly && sp.Unsandboxed || s.mountNS && sp.NoNamespaces || sp.Attach && !s.attach {
			continue
		}
		if err := s.run(sp); err != nil {
			return s.name, err
		}
	}
	return "exec", errors.New("execve returned")
}

func readSpec() (*spec, error) {
	for _, fd := range []int{specFD, errFD, ptyFD, mntFD, rootFD, cwdFD} {
		unix.CloseOnExec(fd)
	}
	f := os.NewFile(specFD, "spec")
	defer f.Close()
	var s spec
	if err := json.NewDecoder(f).Decode(&s); err != nil {
		return nil, fmt.Errorf("decode spec: %w", err)
	}
	if s.Root == "" || len(s.Argv) == 0 {
		return nil, errors.New("decode spec: root or argv missing")
	}
	if !s.Attach {
		if err := placeViewFiles(&s); err != nil {
			return nil, err
		}
	}
	return &s, nil
}

// placeViewFiles takes the view's descriptors from the message the parent
// sends after the spec on the socket at viewFD (sendViewFiles) and puts
// them where mountView uses them: the idmapped kept directory on viewFD
// (which replaces the socket), the FUSE socket on viewReadyFD. Without
// them the socket is closed.
func placeViewFiles(s *spec) error {
	v := s.View
	if v == nil || !v.LowerFD && !v.FUSE {
		return unix.Close(viewFD)
	}
	want := 0
	for _, b := range []bool{v.LowerFD, v.FUSE} {
		if b {
			want++
		}
	}
	buf := make([]byte, 1)
	oob := make([]byte, unix.CmsgSpace(4*want))
	_, oobn, _, _, err := unix.Recvmsg(viewFD, buf, oob, unix.MSG_CMSG_CLOEXEC)
	if err != nil {
		return fmt.Errorf("receive the view's descriptors: %w", err)
	}
	var fds []int
	if msgs, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(msgs) == 1 {
		fds, _ = unix.ParseUnixRights(&msgs[0])
	}
	if len(fds) != want {
		return fmt.Errorf("receive the view's descriptors: %d of %d", len(fds), want)
	}
	places := []int{viewFD, viewReadyFD}
	if !v.LowerFD {
		places = places[1:]
		unix.Close(viewFD)
	}
	for i, fd := range fds {
		if fd == places[i] {
			continue // received there (close-on-exec, MSG_CMSG_CLOEXEC)
		}
		if err := unix.Dup3(fd, places[i], unix.O_CLOEXEC); err != nil {
			return fmt.Errorf("place the view's descriptors: %w", err)
		}
		unix.Close(fd)
	}
	return nil
}

// setupLoopback brings lo up the way Nix does: SIOCSIFFLAGS with
// IFF_UP|IFF_LOOPBACK|IFF_RUNNING on a datagram socket. The kernel then
// gives lo 127.0.0.1/8 and ::1/128 by itself.
func setupLoopback(s *spec) error {
	if s.HostNetwork {
		return nil
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	ifr.SetUint16(unix.IFF_UP | unix.IFF_LOOPBACK | unix.IFF_RUNNING)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("ioctl SIOCSIFFLAGS lo: %w", err)
	}
	return nil
}

func setupUTS(s *spec) error {
	if err := unix.Sethostname([]byte(s.Hostname)); err != nil {
		return fmt.Errorf("sethostname %q: %w", s.Hostname, err)
	}
	if err := unix.Setdomainname([]byte(s.Domainname)); err != nil {
		return fmt.Errorf("setdomainname %q: %w", s.Domainname, err)
	}
	return nil
}

// makeMountsPrivate stops our mounts from propagating to the host (and
// the host's into the sandbox), as Nix's mount("/", MS_REC|MS_PRIVATE).
func makeMountsPrivate(*spec) error {
	return mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
}

// mountRoot mounts a tmpfs on Root: the new root, a mount point of its
// own as pivot_root needs, whose skeleton (the plan's directories, files,
// symlinks and mount points) lives in memory and vanishes with the
// sandbox's mount namespace. Nix builds it in a directory on disk
// (src/libstore/unix/build/chroot-derivation-builder.cc,
// ChrootDerivationBuilder::prepareSandbox); on disk each of those entries costs the start
// and the clean-up a synchronous metadata write. The mount is made by the
// mapped sandbox user, who owns its top as it owned the directory, and is
// read-only after pivot_root (readOnlyRoot), so its size is never used.
func mountRoot(s *spec) error {
	return mount("tmpfs", s.Root, "tmpfs", 0, "mode=0755")
}

func applyPlan(s *spec) error {
	for _, op := range s.Mounts {
		if err := applyOp(s.Root, op); err != nil {
			return err
		}
	}
	return nil
}

// applyOp runs one step of the mount plan below root.
func applyOp(root string, op Op) error {
	if !filepath.IsAbs(op.Target) || strings.Contains(op.Target, "/../") || strings.HasSuffix(op.Target, "/..") {
		return fmt.Errorf("%s: target must be a clean absolute path", op)
	}
	t := filepath.Join(root, op.Target)
	parent := func() error {
		if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	}
	switch op.Kind {
	case OpMkdir:
		if err := parent(); err != nil {
			return err
		}
		if err := unix.Mkdir(t, 0o700); err != nil && err != unix.EEXIST {
			return fmt.Errorf("%s: mkdir: %w", op, err)
		}
		return chmod(t, op.Mode)
	case OpFile:
		if err := parent(); err != nil {
			return err
		}
		if err := os.WriteFile(t, []byte(op.Data), 0o600); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return chmod(t, op.Mode)
	case OpSymlink:
		if err := parent(); err != nil {
			return err
		}
		if err := os.Symlink(op.Source, t); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	case OpBind:
		return bindOp(t, op)
	case OpRebind:
		if !filepath.IsAbs(op.Source) || filepath.Clean(op.Source) != op.Source {
			return fmt.Errorf("%s: source must be a clean absolute path", op)
		}
		inside := op
		inside.Kind, inside.Source = OpBind, filepath.Join(root, op.Source)
		return bindOp(t, inside)
	case OpMount:
		if err := os.MkdirAll(t, 0o755); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return mount(op.FSType, t, op.FSType, 0, op.Data)
	case OpChmod:
		return chmod(t, op.Mode)
	}
	return fmt.Errorf("unknown mount plan step %q", op.Kind)
}

func chmod(path string, mode uint32) error {
	if err := unix.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s %#o: %w", path, mode, err)
	}
	return nil
}

// bindOp binds op.Source on t, creating t as a directory or an empty file
// to match the source (a bind needs a target of the same kind).
func bindOp(t string, op Op) error {
	if op.KeepSymlink {
		if target, err := os.Readlink(op.Source); err == nil {
			if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			if err := os.Symlink(target, t); err != nil {
				return fmt.Errorf("%s: %w", op, err)
			}
			return nil
		}
	}
	st, err := os.Stat(op.Source)
	if err != nil {
		if op.Optional && errors.Is(err, os.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("%s: %w", op, err)
	}
	if err := os.MkdirAll(filepath.Dir(t), 0o755); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if st.IsDir() {
		if err := os.Mkdir(t, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			return fmt.Errorf("%s: %w", op, err)
		}
	} else {
		f, err := os.OpenFile(t, os.O_CREATE|os.O_WRONLY, 0o444)
		if err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		f.Close()
	}
	flags := uintptr(unix.MS_BIND)
	if op.Recursive {
		flags |= unix.MS_REC
	}
	if err := mount(op.Source, t, "", flags, ""); err != nil {
		return err
	}
	if op.Shared {
		if err := mount("", t, "", unix.MS_SHARED, ""); err != nil {
			return err
		}
	}
	if op.ReadOnly {
		return makeReadOnly(t, op.Recursive)
	}
	return nil
}

// makeReadOnly sets MOUNT_ATTR_RDONLY on the mount at path (and, with
// recursive, on every mount below it). mount_setattr changes only that
// flag; a classic MS_REMOUNT would have to repeat the mount's locked
// flags (nosuid, nodev…) or fail with EPERM inside a user namespace.
func makeReadOnly(path string, recursive bool) error {
	var flags uint
	if recursive {
		flags = unix.AT_RECURSIVE
	}
	attr := unix.MountAttr{Attr_set: unix.MOUNT_ATTR_RDONLY}
	err := unix.MountSetattr(unix.AT_FDCWD, path, flags, &attr)
	if err == nil {
		return nil
	}
	if err != unix.ENOSYS || recursive {
		return fmt.Errorf("mount_setattr %s MOUNT_ATTR_RDONLY: %w", path, err)
	}
	// Kernels before 5.12: remount, keeping the flags we may not drop.
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", path, err)
	}
	keep := uintptr(st.Flags) & (unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC | unix.MS_NOATIME | unix.MS_NODIRATIME | unix.MS_RELATIME)
	return mount("", path, "", unix.MS_REMOUNT|unix.MS_BIND|unix.MS_RDONLY|keep, "")
}

// pivotRoot swaps the root as Nix does: pivot_root(".", "real-root"),
// chroot("."), then detach and remove the old root, so nothing of the
// host's tree stays reachable.
func pivotRoot(s *spec) error {
	if err := unix.Chdir(s.Root); err != nil {
		return fmt.Errorf("chdir %s: %w", s.Root, err)
	}
	if err := unix.Mkdir("real-root", 0o500); err != nil {
		return fmt.Errorf("mkdir real-root: %w", err)
	}
	if err := unix.PivotRoot(".", "real-root"); err != nil {
		return fmt.Errorf("pivot_root . real-root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot .: %w", err)
	}
	if err := unix.Unmount("/real-root", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("umount /real-root: %w", err)
	}
	if err := unix.Rmdir("/real-root"); err != nil {
		return fmt.Errorf("rmdir /real-root: %w", err)
	}
	return nil
}

// readOnlyRoot makes "/" read-only. In Nix, /, /etc and /dev belong to
// the daemon's root, which is unmapped inside, so a build cannot write
// there (EACCES). Our skeleton belongs to the mapped caller; a read-only
// mount is the nearest equivalent (EROFS). /build, /tmp, /dev/shm and
// /dev/pts are mounts of their own and stay writable.
func readOnlyRoot(*spec) error {
	return makeReadOnly("/", false)
}

// enterBuildMounts joins the running build's mount namespace, root and
// directory (spec.Attach). setns(CLONE_NEWNS) refuses a thread that
// shares its fs_struct (root, cwd, umask) with others, as every Go
// thread does; this one, which ends in execve, gets its own first.
func enterBuildMounts(s *spec) error {
	if !s.Attach {
		return nil
	}
	if err := unix.Unshare(unix.CLONE_FS); err != nil {
		return fmt.Errorf("unshare CLONE_FS: %w", err)
	}
	if err := unix.Setns(mntFD, unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("setns mount namespace: %w", err)
	}
	if err := unix.Fchdir(rootFD); err != nil {
		return fmt.Errorf("fchdir to the build's root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("chroot to the build's root: %w", err)
	}
	if len(s.Tools) > 0 {
		if err := addTools(s.Tools); err != nil {
			return err
		}
	}
	if err := unix.Fchdir(cwdFD); err != nil {
		return fmt.Errorf("fchdir to the builder's directory: %w", err)
	}
	for _, fd := range []int{mntFD, rootFD, cwdFD} {
		unix.Close(fd)
	}
	return nil
}

// addTools shows the --with tools in a copy of the build's mount
// namespace that only the attached command uses: the build's own
// /nix/store directory and its files stay as they are. The copy's
// /nix/store becomes a read-only tmpfs holding the entries the build's
// has (each its own bind, so they stay live) and the tools (detached
// mounts nbs cloned from the host's store). An entry the build creates
// later in its /nix/store (an output not begun yet) is not seen here.
func addTools(tools []string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return fmt.Errorf("unshare mount namespace: %w", err)
	}
	// Slave: the build's mounts still reach the copy, nothing of the
	// copy reaches the build.
	if err := mount("", "/", "", unix.MS_REC|unix.MS_SLAVE, ""); err != nil {
		return err
	}
	const store = "/nix/store"
	entries, err := os.ReadDir(store)
	if err != nil {
		return err
	}
	type entry struct {
		name, link string
		fd         int
		dir        bool
	}
	var keep []entry
	for _, e := range entries {
		p := store + "/" + e.Name()
		if e.Type()&os.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			keep = append(keep, entry{name: e.Name(), link: l, fd: -1})
			continue
		}
		fd, err := unix.OpenTree(unix.AT_FDCWD, p, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC|unix.AT_RECURSIVE)
		if err != nil {
			return fmt.Errorf("open_tree %s: %w", p, err)
		}
		keep = append(keep, entry{name: e.Name(), fd: fd, dir: e.IsDir()})
	}
	for i, t := range tools {
		keep = append(keep, entry{name: filepath.Base(t), fd: toolFD + i, dir: true})
	}
	if err := mount("tmpfs", store, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, "mode=1775"); err != nil {
		return err
	}
	for _, e := range keep {
		p := store + "/" + e.name
		switch {
		case e.fd < 0:
			err = os.Symlink(e.link, p)
		case e.dir:
			err = os.Mkdir(p, 0o555)
		default:
			err = os.WriteFile(p, nil, 0o444)
		}
		if err != nil && !errors.Is(err, os.ErrExist) {
			return err
		}
		if e.fd >= 0 {
			if err := unix.MoveMount(e.fd, "", unix.AT_FDCWD, p, unix.MOVE_MOUNT_F_EMPTY_PATH); err != nil {
				return fmt.Errorf("move_mount %s: %w", p, err)
			}
			unix.Close(e.fd)
		}
	}
	return makeReadOnly(store, false)
}

// findCommand looks Argv[0] up on the environment's PATH when it is a
// bare name, as a shell would (nbs attach NAME make): inside the build's
// root, where the command will run.
func findCommand(s *spec) error {
	// With Exe, Argv[0] is only the program's name.
	if s.Exe != "" || strings.Contains(s.Argv[0], "/") {
		return nil
	}
	pathEnv := ""
	for _, kv := range s.Env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			pathEnv = v
		}
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, s.Argv[0])
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && unix.Access(p, unix.X_OK) == nil {
			s.Argv[0] = p
			return nil
		}
	}
	return fmt.Errorf("%s: not found in the build's PATH (%s)", s.Argv[0], pathEnv)
}

// setupTTY gives the command a terminal of its own: a pty from the
// sandbox's devpts instance, the master sent to the parent, which relays
// it to the user's terminal. The sandbox never holds a descriptor of the
// user's terminal, so TIOCSTI there is impossible.
func setupTTY(s *spec) error {
	if !s.TTY {
		return nil
	}
	ptmx := "/dev/pts/ptmx"
	if s.Unsandboxed {
		ptmx = "/dev/ptmx" // the host's devpts, whose own ptmx is 0000
	}
	master, slave, err := term.OpenPTY(ptmx)
	if err != nil {
		return err
	}
	defer master.Close()
	defer slave.Close()
	name := slave.Name()
	if err := unix.Sendmsg(ptyFD, []byte{0}, unix.UnixRights(int(master.Fd())), nil, 0); err != nil {
		return fmt.Errorf("send pty master: %w", err)
	}
	// We are PID 1 and a session leader (Setsid at spawn).
	sfd := int(slave.Fd())
	if err := unix.IoctlSetInt(sfd, unix.TIOCSCTTY, 0); err != nil {
		return fmt.Errorf("make %s the controlling terminal: %w", name, err)
	}
	for fd := 0; fd <= 2; fd++ {
		if err := unix.Dup3(sfd, fd, 0); err != nil {
			return fmt.Errorf("dup %s to fd %d: %w", name, fd, err)
		}
	}
	return nil
}
