package sandbox

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// sandboxUser is the host user the sandbox runs as.
type sandboxUser struct {
	ids Owner
	// chown is ids when nbs runs as host root, which hands the work
	// directory and the copy to that user; nil otherwise.
	chown *Owner
	// release gives back what was taken to pick the user (a build
	// user's lock).
	release func()
}

// takeSandboxUser picks the sandbox's host user (sandboxOwner) and, as
// host root, drops nbs's own supplementary groups.
func takeSandboxUser() (*sandboxUser, error) { return takeSandboxUserPreferring(-1) }

// takeSandboxUserPreferring is takeSandboxUser where plain root takes
// the build user prefer (uid) if it is free: the owner of kept changes
// entered again, which the kernel's overlay can stack only for the user
// who made them.
func takeSandboxUserPreferring(prefer int) (*sandboxUser, error) {
	owner, release, err := sandboxOwner(prefer)
	if err != nil {
		return nil, err
	}
	u := &sandboxUser{ids: owner, release: release}
	if isHostRoot() {
		u.chown = &u.ids
		// Like Nix's helper before clone: root's supplementary groups
		// must not reach the sandbox (they would grant access by group).
		if err := syscall.Setgroups(nil); err != nil {
			release()
			return nil, fmt.Errorf("drop supplementary groups: %w", err)
		}
	}
	return u, nil
}

// sandboxOwner picks the host user the sandbox user 1000 maps to: the
// caller; under sudo the user who ran sudo; as plain root a free Nix
// build user, or nobody. The sandbox never runs as host root. The
// returned function releases what was taken.
func sandboxOwner(prefer int) (Owner, func(), error) {
	none := func() {}
	if !isHostRoot() {
		return Owner{UID: os.Geteuid(), GID: os.Getegid()}, none, nil
	}
	if su, sg := os.Getenv("SUDO_UID"), os.Getenv("SUDO_GID"); su != "" && sg != "" {
		uid, err1 := strconv.Atoi(su)
		gid, err2 := strconv.Atoi(sg)
		if err1 == nil && err2 == nil && uid != 0 && gid != 0 {
			return Owner{UID: uid, GID: gid}, none, nil
		}
	}
	if o, release, ok := lockBuildUser("/nix/var/nix/userpool", prefer); ok {
		return o, release, nil
	}
	return Owner{UID: 65534, GID: 65534}, none, nil
}

// lockBuildUser takes a member of the nixbld group the way Nix's UserLock
// does: by flock'ing userpool/<uid>. Nix kills every process of a build
// user before it builds with it; holding the lock keeps Nix from picking
// the user our sandbox runs as.
//
// The build user prefer (a uid; -1 for none) is tried first.
func lockBuildUser(pool string, prefer int) (Owner, func(), bool) {
	g, err := user.LookupGroup("nixbld")
	if err != nil {
		return Owner{}, nil, false
	}
	gid, _ := strconv.Atoi(g.Gid)
	members, err := groupMembers("/etc/group", "nixbld")
	if err != nil {
		return Owner{}, nil, false
	}
	if p, err := user.LookupId(strconv.Itoa(prefer)); err == nil && prefer > 0 {
		members = append([]string{p.Username}, members...)
	}
	for _, name := range members {
		u, err := user.Lookup(name)
		if err != nil {
			continue
		}
		uid, _ := strconv.Atoi(u.Uid)
		if uid == 0 {
			continue
		}
		if err := os.MkdirAll(pool, 0o755); err != nil {
			return Owner{}, nil, false
		}
		f, err := os.OpenFile(filepath.Join(pool, u.Uid), os.O_CREATE|os.O_RDWR|syscall.O_CLOEXEC, 0o600)
		if err != nil {
			continue
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		return Owner{UID: uid, GID: gid}, func() { f.Close() }, true
	}
	return Owner{}, nil, false
}

// groupMembers lists the members of group name in an /etc/group file.
func groupMembers(path, name string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(line, ":")
		if len(f) == 4 && f[0] == name && f[3] != "" {
			return strings.Split(f[3], ","), nil
		}
	}
	return nil, fmt.Errorf("group %s has no members in %s", name, path)
}

// isHostRoot reports whether nbs runs as the real root: uid 0 in the
// initial user namespace. Root of a user namespace (unshare -r, a rootless
// container) is an ordinary user to the kernel and is treated as one.
func isHostRoot() bool {
	if os.Geteuid() != 0 {
		return false
	}
	b, err := os.ReadFile("/proc/self/uid_map")
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) == 3 && f[0] == "0" && f[1] == "0" && f[2] == "4294967295"
}
