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
