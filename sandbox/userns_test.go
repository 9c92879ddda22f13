//go:build linux

package sandbox

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func TestUserNSHint(t *testing.T) {
	cases := []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"user/max_user_namespaces": "0\n"}, "sysctl -w user.max_user_namespaces="},
		{map[string]string{"user/max_user_namespaces": "1000", "kernel/unprivileged_userns_clone": "0"}, "sysctl -w kernel.unprivileged_userns_clone=1"},
		{map[string]string{"kernel/apparmor_restrict_unprivileged_userns": "1"}, "AppArmor"},
		{map[string]string{}, "refused to create a user namespace"},
	}
	for _, c := range cases {
		dir := t.TempDir()
		for name, v := range c.files {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
			os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644)
		}
		if got := userNSHint(dir); !strings.Contains(got, c.want) {
			t.Errorf("userNSHint(%v) = %q, want it to contain %q", c.files, got, c.want)
		}
	}
	err := startError(&os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: syscall.EPERM})
	if !errors.Is(err, errUserNS) {
		t.Errorf("startError(EPERM) = %v, want errUserNS", err)
	}
}

func TestMountError(t *testing.T) {
	err := &mountError{source: "/nix/store", target: "/tmp/r/nix/store", flags: unix.MS_BIND | unix.MS_REC | unix.MS_RDONLY, err: syscall.EPERM}
	want := "mount /nix/store on /tmp/r/nix/store (MS_RDONLY|MS_BIND|MS_REC): operation not permitted"
	if err.Error() != want {
		t.Errorf("got %q\nwant %q", err.Error(), want)
	}
	if !errors.Is(err, syscall.EPERM) {
		t.Error("mountError does not unwrap to its errno")
	}
}

// TestClassifyNS: every restriction is told apart from the others, with
// its own hint, and nothing else is taken for one.
func TestClassifyNS(t *testing.T) {
	open := nsFacts{maxUserNS: "96363", apparmor: "unconfined"}
	with := func(f func(*nsFacts)) nsFacts {
		c := open
		f(&c)
		return c
	}
	cases := []struct {
		name  string
		err   error
		facts nsFacts
		cause nsCause
		hint  string
	}{
		{"docker seccomp", syscall.EPERM, with(func(f *nsFacts) { f.seccompRefuses, f.seccompFilter, f.container, f.root = true, true, "docker", true }),
			causeSeccomp, "`docker run --security-opt seccomp=unconfined …` (or --privileged)"},
		{"docker seccomp and apparmor", syscall.EPERM, with(func(f *nsFacts) { f.seccompRefuses, f.apparmor = true, "docker-default (enforce)" }),
			causeSeccomp, "--security-opt seccomp=unconfined --security-opt apparmor=unconfined …`"},
		{"podman", syscall.EPERM, with(func(f *nsFacts) { f.seccompRefuses, f.container = true, "podman" }),
			causeSeccomp, "`podman run --security-opt seccomp=unconfined"},
		{"filter on clone flags only", syscall.EPERM, with(func(f *nsFacts) { f.seccompFilter = true }),
			causeSeccomp, "a seccomp filter refuses namespaces here"},
		{"max_user_namespaces 0", syscall.ENOSPC, with(func(f *nsFacts) { f.maxUserNS = "0" }),
			causeMaxUserNS, "sysctl -w user.max_user_namespaces=15000"},
		{"limit reached", syscall.ENOSPC, open, causeMaxUserNS, "(user.max_user_namespaces = 96363) is reached"},
		{"no CAP_SYS_ADMIN", syscall.EPERM, with(func(f *nsFacts) { f.unprivClone = "0" }),
			causeNoCapSysAdmin, "leaves user namespaces to processes with CAP_SYS_ADMIN, and nbs has none; enable with: sudo sysctl -w kernel.unprivileged_userns_clone=1"},
		{"no CAP_SYS_ADMIN, root in a container", syscall.EPERM, with(func(f *nsFacts) { f.unprivClone, f.root = "0", true }),
			causeNoCapSysAdmin, "--cap-add SYS_ADMIN"},
		{"apparmor restriction", syscall.EACCES, with(func(f *nsFacts) { f.apparmorRestrict = "1" }),
			causeAppArmorRestrict, "kernel.apparmor_restrict_unprivileged_userns=0"},
		{"apparmor profile", syscall.EACCES, with(func(f *nsFacts) { f.apparmor = "docker-default (enforce)" }),
			causeAppArmorProfile, "the AppArmor profile docker-default refuses it"},
		{"unknown", syscall.EPERM, open, causeUnknown, "the kernel refused to create a user namespace"},
	}
	for _, c := range cases {
		r := classifyNS(&os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: c.err}, c.facts)
		if r.cause != c.cause || !strings.Contains(r.hint, c.hint) {
			t.Errorf("%s: cause %d, hint %q; want %d and %q", c.name, r.cause, r.hint, c.cause, c.hint)
		}
		if strings.Contains(r.hint, "\n") {
			t.Errorf("%s: hint is not one line: %q", c.name, r.hint)
		}
	}
	// CAP_SYS_ADMIN lifts unprivileged_userns_clone = 0: not the cause.
	if r := classifyNS(syscall.EPERM, with(func(f *nsFacts) { f.unprivClone, f.capSysAdmin = "0", true })); r.cause == causeNoCapSysAdmin {
		t.Errorf("CAP_SYS_ADMIN held, still blamed: %q", r.hint)
	}
	// Errors that are not a refused namespace are reported as they are.
	for _, e := range []error{syscall.ENOENT, syscall.ENOMEM, syscall.EAGAIN, syscall.EINVAL, errors.New("spec: broken pipe")} {
		err := &os.PathError{Op: "fork/exec", Path: "/proc/self/exe", Err: e}
		if isNSErrno(err) {
			t.Errorf("%v taken for a refused namespace", e)
		}
		if got := startError(err); errors.Is(got, errUserNS) {
			t.Errorf("startError(%v) = %v, blames namespaces", e, got)
		}
	}
}

// TestReadNSFacts reads the facts from a /proc of our own making.
func TestReadNSFacts(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"sys/user/max_user_namespaces":                     "0\n",
		"sys/kernel/unprivileged_userns_clone":             "1\n",
		"sys/kernel/apparmor_restrict_unprivileged_userns": "1\n",
		"self/attr/current":                                "docker-default (enforce)\n",
		// Docker's 14 default capabilities, no CAP_SYS_ADMIN (bit 21).
		"self/status": "Name:\tnbs\nCapEff:\t00000000a80425fb\nSeccomp:\t2\n",
	}
	for name, v := range files {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644)
	}
	f := readNSFacts(dir)
	if f.maxUserNS != "0" || f.unprivClone != "1" || f.apparmorRestrict != "1" || f.apparmor != "docker-default (enforce)" || f.capSysAdmin || !f.seccompFilter {
		t.Errorf("facts %+v", f)
	}
	if !hasCap("CapEff:\t000001ffffffffff\n", unix.CAP_SYS_ADMIN) || hasCap("CapEff:\tzz\n", unix.CAP_SYS_ADMIN) || hasCap("", 0) {
		t.Error("hasCap")
	}
	// Not under a filter here (the test would not run otherwise): the
	// kernel's own answers to unshare(0) and setns(-1) are no EPERM.
	if status, _ := os.ReadFile("/proc/self/status"); statusField(string(status), "Seccomp") == "0" && seccompRefuses() {
		t.Error("seccompRefuses without a filter")
	}
}
