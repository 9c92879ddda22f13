package sandbox

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// errUserNS is returned (wrapped) when the kernel refuses to create the
// sandbox's user namespace.
var errUserNS = errors.New("user namespaces are not available")

// startError turns a failed clone into something a user can act on: a
// bare EPERM/EACCES/ENOSPC from clone(CLONE_NEWUSER) almost always means a
// seccomp filter, a sysctl or an AppArmor policy forbids unprivileged
// user namespaces (rootlesskit's parent/warn.go does the same). Any other
// error is reported as it is.
func startError(err error) error {
	if !isNSErrno(err) {
		return fmt.Errorf("start sandbox: %w", err)
	}
	r := classifyNS(err, readNSFacts("/proc"))
	return fmt.Errorf("start sandbox: %w: %v; %s", errUserNS, err, r.hint)
}

// isNSErrno: the errors with which the kernel, a seccomp filter or an LSM
// refuses a namespace (EINVAL is not one: it means a bad flag, EUSERS is
// the nesting limit of older kernels).
func isNSErrno(err error) bool {
	for _, e := range []syscall.Errno{syscall.EPERM, syscall.EACCES, syscall.ENOSPC, syscall.EUSERS} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// nsFacts is what decides why namespaces are refused, read from /proc
// (readNSFacts) so that classifyNS is a pure function.
type nsFacts struct {
	// seccompRefuses: unshare(0), a no-op for the kernel, fails with
	// EPERM: a seccomp filter refuses unshare whatever its flags, as
	// Docker's default profile does for a container without
	// CAP_SYS_ADMIN.
	seccompRefuses bool
	// seccompFilter: a seccomp filter is installed (Seccomp: 2 in
	// /proc/self/status), which may refuse clone's namespace flags alone.
	seccompFilter bool
	// capSysAdmin: CAP_SYS_ADMIN is in the effective set.
	capSysAdmin bool
	// The sysctls that gate user namespaces ("" when absent).
	maxUserNS, unprivClone, apparmorRestrict string
	// apparmor is this process's AppArmor label ("docker-default
	// (enforce)"), "" without AppArmor.
	apparmor string
	// root: nbs runs as uid 0.
	root bool
	// container names the container runtime nbs runs in ("docker",
	// "podman"), "" when none is recognised.
	container string
}

// nsCause is one reason namespaces are refused.
type nsCause int

const (
	causeUnknown nsCause = iota
	causeSeccomp
	causeNoCapSysAdmin
	causeMaxUserNS
	causeAppArmorRestrict
	causeAppArmorProfile
)

// nsRestriction is why namespaces are refused and what to change.
type nsRestriction struct {
	cause nsCause
	// hint is one line: the cause, then what gives nbs namespaces.
	hint string
	// err is the refusal itself (set by namespacesRefused).
	err error
}

// error is the refusal for a build that cannot be entered without
// namespaces.
func (r *nsRestriction) error() error {
	return fmt.Errorf("start sandbox: %w: %v; the build ran in Nix's sandbox, which nbs re-creates only with them: %s", errUserNS, r.err, r.hint)
}

// classifyNS names the restriction behind err, the refused clone (or the
// probe's first mount in the new namespaces), from the facts.
func classifyNS(err error, f nsFacts) nsRestriction {
	var how string
	switch f.container {
	case "docker", "podman":
		how = f.container + " run"
	default:
		how = "docker run"
	}
	switch {
	case f.seccompRefuses:
		fix := how + " --security-opt seccomp=unconfined"
		if strings.HasPrefix(f.apparmor, "docker-default") || strings.HasPrefix(f.apparmor, "containers-default") {
			fix += " --security-opt apparmor=unconfined"
		}
		return nsRestriction{cause: causeSeccomp, hint: "a seccomp filter refuses namespaces (a container's, like Docker's default profile); " +
			"to get them, start the container with `" + fix + " …` (or --privileged)"}
	case errors.Is(err, syscall.ENOSPC):
		if f.maxUserNS == "0" {
			return nsRestriction{cause: causeMaxUserNS, hint: "user.max_user_namespaces is 0; enable with: sudo sysctl -w user.max_user_namespaces=15000"}
		}
		return nsRestriction{cause: causeMaxUserNS, hint: "the limit of user namespaces (user.max_user_namespaces = " + f.maxUserNS + ") is reached; raise it with: sudo sysctl -w user.max_user_namespaces=15000"}
	case f.unprivClone == "0" && !f.capSysAdmin:
		hint := "kernel.unprivileged_userns_clone is 0, which leaves user namespaces to processes with CAP_SYS_ADMIN, and nbs has none; enable with: sudo sysctl -w kernel.unprivileged_userns_clone=1"
		if f.container != "" || f.root {
			hint += " (on the host; or give the container CAP_SYS_ADMIN: " + how + " --cap-add SYS_ADMIN …)"
		}
		return nsRestriction{cause: causeNoCapSysAdmin, hint: hint}
	case f.apparmorRestrict == "1":
		return nsRestriction{cause: causeAppArmorRestrict, hint: "AppArmor restricts unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1); " +
			"allow nbs with an AppArmor profile granting 'userns,' or run: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"}
	case f.seccompFilter && errors.Is(err, syscall.EPERM):
		return nsRestriction{cause: causeSeccomp, hint: "a seccomp filter refuses namespaces here (the sysctls allow them); " +
			"in a container, start it with `" + how + " --security-opt seccomp=unconfined …` (or --privileged)"}
	case f.apparmor != "" && f.apparmor != "unconfined" && errors.Is(err, syscall.EACCES):
		name, _, _ := strings.Cut(f.apparmor, " ")
		return nsRestriction{cause: causeAppArmorProfile, hint: "the AppArmor profile " + name + " refuses it; run nbs unconfined (in a container: " + how + " --security-opt apparmor=unconfined …)"}
	}
	return nsRestriction{cause: causeUnknown, hint: "the kernel refused to create a user namespace (is nbs running inside a container that forbids them, or has the user's user-namespace limit been reached?)"}
}

// readNSFacts reads the facts below proc (/proc).
func readNSFacts(proc string) nsFacts {
	read := func(name string) string {
		b, err := os.ReadFile(proc + "/" + name)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	status := read("self/status")
	f := nsFacts{
		maxUserNS:        read("sys/user/max_user_namespaces"),
		unprivClone:      read("sys/kernel/unprivileged_userns_clone"),
		apparmorRestrict: read("sys/kernel/apparmor_restrict_unprivileged_userns"),
		capSysAdmin:      hasCap(status, unix.CAP_SYS_ADMIN),
		seccompFilter:    statusField(status, "Seccomp") == "2",
		seccompRefuses:   seccompRefuses(),
		container:        containerRuntime(),
		root:             os.Geteuid() == 0,
	}
	// attr/apparmor/current from Linux 5.8 (stacked LSMs), attr/current
	// before; "unconfined" either way when no profile applies.
	for _, p := range []string{"self/attr/apparmor/current", "self/attr/current"} {
		if v := read(p); v != "" {
			f.apparmor = v
			break
		}
	}
	return f
}

// seccompRefuses asks the kernel for two things that cannot succeed and
// cannot fail with EPERM there: to unshare nothing (a no-op) and to
// join the user namespace of descriptor -1 (EBADF). Only a seccomp
// filter answers EPERM to them.
func seccompRefuses() bool {
	if unix.Unshare(0) == unix.EPERM {
		return true
	}
	return unix.Setns(-1, unix.CLONE_NEWUSER) == unix.EPERM
}

// statusField is the value of field name in a /proc/PID/status.
func statusField(status, name string) string {
	for _, l := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(l, name+":"); ok {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// hasCap reads capability c from the CapEff line of a /proc/PID/status.
func hasCap(status string, c int) bool {
	bits, err := strconv.ParseUint(statusField(status, "CapEff"), 16, 64)
	return err == nil && bits&(1<<uint(c)) != 0
}

// containerRuntime recognises the marker files Docker (/.dockerenv) and
// Podman (/run/.containerenv) put into their containers.
func containerRuntime() string {
	if _, err := os.Stat("/.dockerenv"); err == nil {
		return "docker"
	}
	if _, err := os.Stat("/run/.containerenv"); err == nil {
		return "podman"
	}
	return ""
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
	f := nsFacts{
		maxUserNS:        read("user/max_user_namespaces"),
		unprivClone:      read("kernel/unprivileged_userns_clone"),
		apparmorRestrict: read("kernel/apparmor_restrict_unprivileged_userns"),
	}
	err := error(syscall.EPERM)
	if f.maxUserNS == "0" {
		err = syscall.ENOSPC
	}
	return classifyNS(err, f).hint
}
