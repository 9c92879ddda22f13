package sandbox

// The /build view: how the sandbox sees the kept directory.
//
// A copy costs the size of the kept directory in time and disk before
// the shell starts (minutes and tens of GB for a browser or a kernel).
// A copy-on-write view costs nothing to enter: the kernel's overlayfs
// shows the kept directory (lower, read-only, never written) with an
// upper directory in the work directory on top, into which a file is
// copied only when it is changed; a deletion is a whiteout there.
//
// Who can mount which view:
//
//   - as root (sudo, plain root): the kept directory belongs to a build
//     user, unmapped in the sandbox's user namespace. The parent, which
//     holds CAP_SYS_ADMIN in the initial user namespace, clones it as a
//     detached mount and idmaps it (open_tree(OPEN_TREE_CLONE),
//     mount_setattr(MOUNT_ATTR_IDMAP)) so that its owner's files belong
//     to the sandbox user; the child attaches that mount (move_mount)
//     and mounts the overlay over it in its own namespaces, where the
//     overlay's writes are its own (Linux 5.19 or later: overlay over
//     idmapped layers).
//   - unprivileged, a kept directory of the caller's own (a build
//     without build users): the child mounts the overlay directly.
//   - unprivileged, a build user's directory: the kernel refuses both
//     (the owner is unmapped, and idmapping needs the initial
//     namespace), so /build is a copy, FICLONE (a reflink) for each file
//     where the file system has them.
//
// The mounts happen in the child's mount namespace, on the host path of
// the work directory's build/, before the plan binds that on /build:
// nothing is mounted on the host, and when the sandbox ends, even by
// SIGKILL, the kernel takes the view down with its namespace. The upper
// directory stays for the change summary (diff.Overlay) and the work
// directory's clean-up.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// viewFiles are what the parent hands the child for the view: the
// idmapped kept directory and, for FUSE, the server to start once the child has
// mounted the file system (before that, the server could not read the
// device; after it, the child's next look at the mount waits for it).
type viewFiles struct {
	fd    *os.File
	serve func(dev *os.File) error
}

// viewStep is the child's step that mounts the view; when it fails, the
// session falls back to a copy.
const viewStep = "mount the /build view"

// viewChoice is the mode chosen for a session and why.
type viewChoice struct {
	mode string
	why  string
	// idmap: the kept directory's owner is not the sandbox user, whose
	// view needs an idmapped lower layer (root only).
	idmap bool
}

// chooseView picks the entry mode from what was asked (Config.Entry),
// whether nbs is host root, and who owns the kept directory.
// An explicit mode that cannot be had is an error.
//
// fuse is nil when an unprivileged FUSE view can be had (fuseAvailable),
// else why not.
//
// --keep takes any mode: what a view keeps is its upper directory (the
// changes, a deletion a whiteout) and a record of the kept directory
// below (KeptView), not a second copy.
//
// A view is chosen without looking inside the kept directory, so that
// entry costs the same whatever its size. What a view shows otherwise
// than a copy, measured on Linux 6.18 in every view nbs mounts:
//
//   - A socket is there but leads nowhere: connect fails with
//     ECONNREFUSED through the kernel's overlay (the socket's inode is
//     the overlay's, not the one a host listener bound) and through
//     fuse-overlayfs, even while a host process listens on the kept
//     one. A copy leaves it out.
//   - A device node (no build can make one: Nix's sandbox has no
//     CAP_MKNOD) is there but does not open (EACCES): both views are
//     mounted in the sandbox's user namespace, whose superblocks the
//     kernel never lets open a device (SB_I_NODEV, may_open_dev), and
//     fuse-overlayfs mounts nodev besides. A copy leaves it out.
//   - Hard links: the kernel's overlay splits them when one name is
//     changed (index=on, which would keep them, falls back to off in a
//     user namespace: no file handles there), and fuse-overlayfs keeps
//     them linked while mounted but records the change under another
//     of the names. A copy keeps them linked. splitLinks says so after
//     the session, for the files it changed.
//   - A file of another owner than the kept directory's (which a build
//     cannot make: it has one uid and one gid) cannot be changed in the
//     kernel's overlay (EACCES, EPERM or EOVERFLOW: the sandbox's user
//     namespace maps only the directory's owner); a copy gives it to
//     the sandbox user. --copy is the way to change such a file.
func chooseView(asked string, root bool, kept, sandbox Owner, fuse error) (viewChoice, error) {
	switch asked {
	case EntryAuto, EntryCopy, EntryOverlay, EntryFUSE:
	default:
		return viewChoice{}, fmt.Errorf("unknown entry mode %q (NBS_ENTRY_MODE): copy, overlay or fuse", asked)
	}
	if asked == EntryCopy {
		return viewChoice{mode: EntryCopy, why: "a copy was asked for"}, nil
	}
	var c viewChoice
	switch {
	case asked == EntryFUSE && fuse == nil:
		c = viewChoice{mode: EntryFUSE, why: "asked for"}
	case kept == sandbox:
		// Both ids: overlayfs cannot copy up a file whose group is
		// unmapped either (EOVERFLOW).
		c = viewChoice{mode: EntryOverlay, why: "the kept directory belongs to the sandbox user and group"}
	case root:
		c = viewChoice{mode: EntryOverlay, why: fmt.Sprintf("root: the kept directory of %d:%d idmapped to the sandbox user %d:%d", kept.UID, kept.GID, sandbox.UID, sandbox.GID), idmap: true}
	case fuse == nil:
		c = viewChoice{mode: EntryFUSE, why: fmt.Sprintf("the kept directory belongs to %d:%d, whom a kernel overlay in a user namespace cannot write through: fuse-overlayfs shows it as the sandbox user's", kept.UID, kept.GID)}
	default:
		c = viewChoice{mode: EntryCopy, why: fmt.Sprintf("the kept directory belongs to %d:%d: an unprivileged overlay could not write through it, and there is no FUSE view (%v); sudo nbs makes an overlay", kept.UID, kept.GID, fuse)}
	}
	if asked != EntryAuto && c.mode != asked {
		return viewChoice{}, fmt.Errorf("entry mode %s is not available here: %s", asked, c.why)
	}
	return c, nil
}

// fuseOverlayfs is the FUSE server of an unprivileged view.
const fuseOverlayfs = "fuse-overlayfs"

// fuseAvailable says whether this caller can have a FUSE view: the
// server is installed and /dev/fuse may be opened (it is 0600 where
// nothing runs udev; Debian's fuse3 package makes it 0666).
func fuseAvailable() error {
	if _, err := exec.LookPath(fuseOverlayfs); err != nil {
		return fmt.Errorf("%s is not installed (Debian: apt install fuse-overlayfs)", fuseOverlayfs)
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open /dev/fuse: %w", err)
	}
	f.Close()
	return nil
}

// openFUSE returns the server of the FUSE view, which the child mounts
// from a /dev/fuse it opens itself (the kernel takes a device opened in
// the user namespace that mounts it only) and sends back: fuse-overlayfs over lower with
// upper and work, run by nbs as the caller, outside the sandbox (in no
// namespace of it: the sandbox can neither see nor signal nor trace it),
// given the device as /dev/fd/3 (libfuse takes such a mount point for an
// already mounted device). The files it shows belong to 1000:100 of the
// sandbox's user namespace (squash_to_uid, squash_to_gid: FUSE reads the
// ids of its replies in the namespace that mounted it); the kernel
// checks permissions on them (default_permissions), the server opens
// the kept files as the caller, so a 0600 file of the build user stays
// unreadable. The server follows no symlink for the sandbox (it returns
// their targets), makes no device nodes (it runs unprivileged on the
// host) and writes only to upper.
func openFUSE(v *viewSpec, log func(string, ...any)) (*viewFiles, func() *exec.Cmd) {
	var cmd *exec.Cmd
	files := &viewFiles{}
	files.serve = func(dev *os.File) error {
		uid, gid := sandboxUID, sandboxGID
		if v.HostIDs {
			uid, gid = os.Getuid(), os.Getgid()
		}
		opts := "lowerdir=" + lowerdirOpt(v) + ",upperdir=" + escapeOpt(v.Upper) + ",workdir=" + escapeOpt(v.Work) +
			fmt.Sprintf(",squash_to_uid=%d,squash_to_gid=%d", uid, gid) + fuseSpeed
		cmd = &exec.Cmd{
			Path:       mustLook(fuseOverlayfs),
			Args:       []string{fuseOverlayfs, "-f", "-o", opts, "/dev/fd/3"},
			Env:        []string{"PATH=/usr/bin:/bin"},
			ExtraFiles: []*os.File{dev},
			SysProcAttr: &syscall.SysProcAttr{
				Setsid:    true,
				Pdeathsig: syscall.SIGKILL,
			},
		}
		log("starting the FUSE view's server", "argv", strings.Join(cmd.Args, " "))
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", fuseOverlayfs, err)
		}
		return nil
	}
	return files, func() *exec.Cmd { return cmd }
}

// fuseSpeed are the FUSE view's options that make a walk of /build
// (find, make, a build system's scan) cost about what it costs on the
// kept directory itself; each changes nothing a build could have made.
//
//   - noacl: no POSIX ACLs. With them the kernel asks the server for
//     each inode's ACL (a getxattr round trip) as it checks permissions
//     along every path, on every walk, not only the first: walks took
//     2-8 times as long. A kept directory holds no ACL (Nix's seccomp
//     filter fails setxattr with ENOTSUP: setupSeccomp in
//     src/libstore/linux/build/linux-derivation-builder.cc; so does
//     nbs's), and the sandbox could set none; the kernel's mode checks
//     (default_permissions) and the server's own opens, as the caller,
//     stay.
//   - fast_ino=1: the server learns a file's inode number with a stat
//     instead of opening the file and reading its overlay origin
//     attributes, which matter only where an upper directory outlives a
//     mount of it; ours is new with each session. The first look at
//     each entry was an open and a close of it.
const fuseSpeed = ",noacl,fast_ino=1"

func mustLook(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	return name
}

// escapeOpt escapes what a FUSE option list would split on.
func escapeOpt(p string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(p)
}

// idmappedTree clones dir as a detached mount on which the files of
// from (uid and gid) belong to to, read-only, nosuid and nodev. It needs
// CAP_SYS_ADMIN in the initial user namespace (mount_setattr(2)).
func idmappedTree(dir string, from, to Owner) (*os.File, error) {
	ns, err := userNamespace(from, to)
	if err != nil {
		return nil, err
	}
	defer ns.Close()
	fd, err := unix.OpenTree(unix.AT_FDCWD, dir, unix.OPEN_TREE_CLONE|unix.OPEN_TREE_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("open_tree %s OPEN_TREE_CLONE: %w", dir, err)
	}
	attr := unix.MountAttr{
		Attr_set:  unix.MOUNT_ATTR_IDMAP | unix.MOUNT_ATTR_RDONLY | unix.MOUNT_ATTR_NOSUID | unix.MOUNT_ATTR_NODEV,
		Userns_fd: uint64(ns.Fd()),
	}
	if err := unix.MountSetattr(fd, "", unix.AT_EMPTY_PATH, &attr); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("mount_setattr %s MOUNT_ATTR_IDMAP: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), "kept-idmapped"), nil
}

// compileView mounts the copy-on-write view of the kept directory on the
// work directory's build/. It sits after "make mounts private", so that
// nothing propagates to the host, and before the mount plan, which binds
// build/ on /build; the host paths it needs vanish with pivot_root.
func compileView(p *prog, v *viewSpec, ids childIDs, fds childFDs) {
	if v.FUSE {
		compileFUSE(p, v, ids, fds)
		return
	}
	if v.LowerFD {
		// Attached in our own mount namespace only; detached again with
		// the old root at pivot_root.
		p.call("move_mount the idmapped kept directory on "+v.Lower, unix.SYS_MOVE_MOUNT, uintptr(fds.lower), p.str(""), atFDCWD, p.str(v.Lower), unix.MOVE_MOUNT_F_EMPTY_PATH)
	}
	p.call("fsopen overlay", unix.SYS_FSOPEN, p.str("overlay"), unix.FSOPEN_CLOEXEC).into(fsFD)
	set := func(key, value string) {
		p.call(fmt.Sprintf("overlay %s=%s", key, value), unix.SYS_FSCONFIG, fsFD, unix.FSCONFIG_SET_STRING, p.str(key), p.str(value), 0)
	}
	flag := func(key string) {
		p.call("overlay "+key, unix.SYS_FSCONFIG, fsFD, unix.FSCONFIG_SET_FLAG, p.str(key), 0, 0)
	}
	// userxattr: an overlay in a user namespace keeps its metadata
	// (opaque directories) in user.overlay.* xattrs, which the caller
	// may read back for the change summary; redirect_dir and metacopy,
	// which need trusted xattrs, stay off, so that every change is an
	// entry of its own in upper.
	set("lowerdir", lowerdirOpt(v))
	set("upperdir", v.Upper)
	set("workdir", v.Work)
	flag("userxattr")
	// volatile: no sync of the upper file system when the overlay goes
	// (ovl_sync_fs). Without it the session's end waited for the
	// writeback of every dirty page of that whole file system, the
	// gigabytes a failed build has just written among them: 265 ms
	// with 400 MB dirty, against 2.7 ms. The changes are thrown away,
	// or, kept with --keep, synced then (syncUpper). Linux 5.10, older
	// than userxattr.
	flag("volatile")
	p.call(fmt.Sprintf("create overlay (lowerdir %s, upperdir %s)", v.Lower, v.Upper), unix.SYS_FSCONFIG, fsFD, unix.FSCONFIG_CMD_CREATE, 0, 0, 0)
	p.call("fsmount overlay", unix.SYS_FSMOUNT, fsFD, unix.FSMOUNT_CLOEXEC, 0).into(fsMountFD)
	p.call("move_mount overlay on "+v.Target, unix.SYS_MOVE_MOUNT, fsMountFD, p.str(""), atFDCWD, p.str(v.Target), unix.MOVE_MOUNT_F_EMPTY_PATH)
	p.call("close", unix.SYS_CLOSE, fsMountFD)
	p.call("close", unix.SYS_CLOSE, fsFD)
}

// compileFUSE opens /dev/fuse, mounts the FUSE view from it for the
// child's own ids, nosuid and nodev, and sends the device to the parent,
// which starts the server on it. The child's descriptor is closed before
// the exec: the sandbox must not be able to answer its own requests.
// The device is opened in the child: the kernel takes a FUSE mount only
// from a device opened in the mounter's user namespace.
func compileFUSE(p *prog, v *viewSpec, ids childIDs, fds childFDs) {
	p.call("open /dev/fuse", unix.SYS_OPENAT, atFDCWD, p.str("/dev/fuse"), unix.O_RDWR|unix.O_CLOEXEC).into(fuseFD)
	opts := fmt.Sprintf("fd=%d,rootmode=40000,user_id=%d,group_id=%d,default_permissions", fuseFD, ids.uid, ids.gid)
	mountOp(p, "nbs-view", v.Target, "fuse", unix.MS_NOSUID|unix.MS_NODEV, opts)
	sendFD(p, "send the FUSE device to nbs", fds.fuseReady, fuseFD)
	p.call("close /dev/fuse", unix.SYS_CLOSE, fuseFD)
	p.call("close", unix.SYS_CLOSE, uintptr(fds.fuseReady))
}

// lowerdirOpt is the overlay's lowerdir: the layers above the kept
// directory, top first, then the kept directory.
func lowerdirOpt(v *viewSpec) string {
	var l []string
	for _, p := range append(append([]string(nil), v.Above...), v.Lower) {
		l = append(l, escapeLowerdir(p))
	}
	return strings.Join(l, ":")
}

// escapeLowerdir escapes what overlayfs's lowerdir option would split on.
func escapeLowerdir(p string) string {
	return strings.NewReplacer(`\`, `\\`, `:`, `\:`, `,`, `\,`).Replace(p)
}

// makeViewDirs creates the view's directories in the work directory:
// build/ (the mount point), upper/, work/ (overlayfs's own) and, with
// idmap, lower/ (where the idmapped kept directory is attached), owned
// by owner when nbs runs as root.
func makeViewDirs(w *workDir, owner *Owner, idmap bool) error {
	dirs := []string{w.build(), w.upper(), w.work()}
	if idmap {
		dirs = append(dirs, w.lower())
	}
	for _, d := range dirs {
		if err := os.Mkdir(d, 0o700); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
		if owner != nil {
			if err := os.Lchown(d, owner.UID, owner.GID); err != nil {
				return fmt.Errorf("chown %s: %w", d, err)
			}
		}
	}
	return nil
}

// dirOwner is the owner of dir.
func dirOwner(dir string) (Owner, error) {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return Owner{}, fmt.Errorf("stat %s: %w", dir, err)
	}
	return Owner{UID: int(st.Uid), GID: int(st.Gid)}, nil
}

// isViewFailure: the child could not mount the view.
func isViewFailure(err error) bool {
	var se *setupError
	return errors.As(err, &se) && se.Step == viewStep
}

// removeViewDirs removes what makeViewDirs made, before a fallback copy
// creates build/ itself.
func removeViewDirs(w *workDir) error {
	var errs []error
	for _, d := range []string{w.build(), w.upper(), w.work(), w.lower()} {
		if err := removeTree(d); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
