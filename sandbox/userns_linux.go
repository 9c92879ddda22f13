package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
)

// errUserNS is returned (wrapped) when the kernel refuses to create the
// sandbox's user namespace.
var errUserNS = errors.New("user namespaces are not available")

// startError turns a failed clone into something a user can act on: a
// bare EPERM/EACCES/ENOSPC from clone(CLONE_NEWUSER) almost always means a
// sysctl or an AppArmor policy forbids unprivileged user namespaces
// (rootlesskit's parent/warn.go does the same).
func startError(err error) error {
	if !errors.Is(err, syscall.EPERM) && !errors.Is(err, syscall.EACCES) &&
		!errors.Is(err, syscall.ENOSPC) && !errors.Is(err, syscall.EINVAL) && !errors.Is(err, syscall.EUSERS) {
		return fmt.Errorf("start sandbox: %w", err)
	}
	return fmt.Errorf("start sandbox: %w: %v; %s", errUserNS, err, userNSHint("/proc/sys"))
}

// userNSHint reads the sysctls that gate unprivileged user namespaces
// below procSys and says which one to change.
func userNSHint(procSys string) string {
	read := func(name string) string {
		b, err := os.ReadFile(procSys + "/" + name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	if read("user/max_user_namespaces") == "0" {
		return "user.max_user_namespaces is 0; enable with: sudo sysctl -w user.max_user_namespaces=15000"
	}
	if read("kernel/unprivileged_userns_clone") == "0" {
		return "kernel.unprivileged_userns_clone is 0; enable with: sudo sysctl -w kernel.unprivileged_userns_clone=1"
	}
	if read("kernel/apparmor_restrict_unprivileged_userns") == "1" {
		return "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1); " +
			"allow nbs with an AppArmor profile granting 'userns,' or run: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
	}
	return "the kernel refused to create a user namespace (is nbs running inside a container that forbids them, or has the user's user-namespace limit been reached?)"
}
