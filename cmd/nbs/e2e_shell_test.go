//go:build linux

package main

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// runner is one way of running nbs: as an ordinary user, as root under
// sudo (the copy is handed to the sudo caller) and as plain root (the
// sandbox runs as a Nix build user). In every case the sandboxed
// processes run as an unprivileged host uid, never as host root.
type runner struct {
	name    string
	user    *testUser
	env     []string
	hostUID int // the host uid that sandbox uid 1000 maps to
	hostGID int
	// buildUsers, for plain root, are the uids nbs may pick: any free
	// member of nixbld (it locks one the way Nix does, so a concurrent
	// build may have taken nixbld1).
	buildUsers map[int]bool
	// groups is what `id -G` prints inside. An unprivileged caller keeps
	// its supplementary groups: the kernel lets no one drop them once
	// setgroups is denied, and writing the gid map unprivileged requires
	// denying it. They show as the overflow gid 65534 (bubblewrap has the
	// same limitation). Root drops them before the clone, as Nix does.
	groups string
}

func runners(t *testing.T) []runner {
	t.Helper()
	requireUserNS(t)
	u := unprivileged(t)
	rs := []runner{
		{name: "user", user: u, hostUID: u.uid, hostGID: u.gid, groups: "100" + strings.Repeat(" 65534", supplementary(t, u))},
		{name: "sudo", env: []string{"SUDO_UID=" + strconv.Itoa(u.uid), "SUDO_GID=" + strconv.Itoa(u.gid), "SUDO_USER=" + u.name}, hostUID: u.uid, hostGID: u.gid, groups: "100"},
	}
	if g, err := user.LookupGroup("nixbld"); err == nil {
		gid, _ := strconv.Atoi(g.Gid)
		users := map[int]bool{}
		out, _ := exec.Command("getent", "group", "nixbld").Output()
		if f := strings.Split(strings.TrimSpace(string(out)), ":"); len(f) == 4 {
			for _, name := range strings.Split(f[3], ",") {
				if u, err := user.Lookup(name); err == nil {
					uid, _ := strconv.Atoi(u.Uid)
					users[uid] = true
				}
			}
		}
		if len(users) > 0 {
			rs = append(rs, runner{name: "root", hostUID: -1, hostGID: gid, groups: "100", buildUsers: users})
		}
	}
	return rs
}

// uidMapOK checks a uid_map line ("1000 HOSTUID 1") against the runner.
func (r runner) uidMapOK(line string) bool {
	f := strings.Fields(line)
	if len(f) != 3 || f[0] != "1000" || f[2] != "1" {
		return false
	}
	uid, err := strconv.Atoi(f[1])
	if err != nil {
		return false
	}
	if r.buildUsers != nil {
		return r.buildUsers[uid]
	}
	return uid == r.hostUID
}

// supplementary counts u's groups besides its primary one.
func supplementary(t *testing.T, u *testUser) int {
	t.Helper()
	usr, err := user.LookupId(strconv.Itoa(u.uid))
	if err != nil {
		t.Fatal(err)
	}
	gids, err := usr.GroupIds()
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range gids {
		if g != strconv.Itoa(u.gid) {
			n++
		}
	}
	return n
}

func (r runner) shell(t *testing.T, dir string, cmd ...string) result {
	t.Helper()
	return runNBS(t, r.user, r.env, append([]string{"shell", dir}, cmd...)...)
}

// TestShellAssignment checks every assertion of the assignment's tests 1–6
// on a directory kept by real nix-build, for each way of running nbs.
func TestShellAssignment(t *testing.T) {
	dir := buildFailure(t, "fail")
	before := treeSum(t, dir)
	hostNS := map[string]string{}
	for _, ns := range []string{"mnt", "net", "uts", "ipc", "pid", "user"} {
		l, err := os.Readlink("/proc/self/ns/" + ns)
		if err != nil {
			t.Fatal(err)
		}
		hostNS[ns] = l
	}
	kvm := ""
	if _, err := os.Stat("/dev/kvm"); err == nil {
		kvm = "/dev/kvm\n"
	}

	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			cases := []struct {
				name string
				cmd  []string
				want string
			}{
				// Test 1: the command runs with env-vars sourced.
				{"echo", []string{"echo", "hello"}, "hello\n"},
				{"env", []string{"sh", "-c", "echo $HOME $NIX_BUILD_TOP $PWD $name"}, "/homeless-shelter /build /build nbs-e2e-fail\n"},
				{"cwd", []string{"pwd"}, "/build\n"},
				// Test 2: user namespace.
				{"gid_map", []string{"sh", "-c", "echo $(cat /proc/self/gid_map)"}, fmt.Sprintf("100 %d 1\n", r.hostGID)},
				{"setgroups", []string{"cat", "/proc/self/setgroups"}, "deny\n"},
				{"id", []string{"sh", "-c", "id -u; id -g; id -G"}, "1000\n100\n" + r.groups + "\n"},
				// Test 3: UTS namespace.
				{"hostname", []string{"hostname"}, "localhost\n"},
				{"domainname", []string{"cat", "/proc/sys/kernel/domainname"}, "(none)\n"},
				// Test 4: network namespace with only lo.
				{"interfaces", []string{"sh", "-c", "ls /sys/class/net 2>/dev/null || tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '"}, "lo\n"},
				{"addresses", []string{"sh", "-c", "ip -o addr | awk '{print $2, $4}'"}, "lo 127.0.0.1/8\nlo ::1/128\n"},
				{"lo up", []string{"sh", "-c", "ip -o link show lo | grep -o 'LOOPBACK,UP,LOWER_UP'"}, "LOOPBACK,UP,LOWER_UP\n"},
				// Test 5: mount namespace.
				{"root", []string{"ls", "/"}, "bin\nbuild\ndev\netc\nnix\nproc\ntmp\n"},
				{"dev", []string{"sh", "-c", "find /dev -maxdepth 1 | sort"},
					"/dev\n/dev/fd\n/dev/full\n" + kvm + "/dev/null\n/dev/ptmx\n/dev/pts\n/dev/random\n/dev/shm\n/dev/stderr\n/dev/stdin\n/dev/stdout\n/dev/tty\n/dev/urandom\n/dev/zero\n"},
				{"dev types", []string{"sh", "-c", "for f in fd full null ptmx pts random shm stderr stdin stdout tty urandom zero; do echo $f $(stat -c %F /dev/$f); done"},
					"fd symbolic link\nfull character special file\nnull character special file\nptmx character special file\npts directory\nrandom character special file\nshm directory\nstderr symbolic link\nstdin symbolic link\nstdout symbolic link\ntty character special file\nurandom character special file\nzero character special file\n"},
				{"dev links", []string{"sh", "-c", "for f in fd stdin stdout stderr; do readlink /dev/$f; done"}, "/proc/self/fd\n/proc/self/fd/0\n/proc/self/fd/1\n/proc/self/fd/2\n"},
				{"dev null works", []string{"sh", "-c", "echo x > /dev/null && head -c 4 /dev/zero | wc -c"}, "4\n"},
				{"pts new instance", []string{"ls", "/dev/pts"}, "ptmx\n"},
				{"passwd", []string{"cat", "/etc/passwd"}, "root:x:0:0:Nix build user:/build:/noshell\nnixbld:x:1000:100:Nix build user:/build:/noshell\nnobody:x:65534:65534:Nobody:/:/noshell\n"},
				{"group", []string{"cat", "/etc/group"}, "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n"},
				{"hosts", []string{"cat", "/etc/hosts"}, "127.0.0.1 localhost\n::1 localhost\n"},
				{"etc", []string{"ls", "/etc"}, "group\nhosts\npasswd\n"},
				{"tmp", []string{"stat", "-c", "%a", "/tmp"}, "1777\n"},
				{"tmp empty", []string{"ls", "-A", "/tmp"}, ""},
				{"shm", []string{"sh", "-c", "stat -c %a /dev/shm; awk '$2==\"/dev/shm\"{print $3}' /proc/mounts"}, "1777\ntmpfs\n"},
				{"proc", []string{"sh", "-c", "stat -c %a /proc; awk '$2==\"/proc\"{print $3}' /proc/mounts"}, "555\nproc\n"},
				{"build mode", []string{"stat", "-c", "%a %u %g", "/build"}, "700 1000 100\n"},
				{"build files", []string{"sh", "-c", "cat src/file.txt; readlink src/link; readlink src/abs-link; stat -c '%F %a' src/fifo src/sub src/run.sh; ls src/empty"},
					"hello\nfile.txt\n/etc/passwd\nfifo 644\ndirectory 705\nregular file 755\n"},
				{"bin sh", []string{"/bin/sh", "-c", "echo works"}, "works\n"},
				// Issue 4: the store shows the input closure only, each
				// path read-only; the store dir itself is writable (Nix:
				// root:nixbld 01775) but private to the sandbox.
				{"store read-only", []string{"sh", "-c", "touch $SHELL 2>/dev/null || echo refused; touch ${PATH%/bin}/new 2>/dev/null || echo refused"}, "refused\nrefused\n"},
				{"store closure", []string{"sh", "-c", "ls /nix/store | sed 's/^[a-z0-9]*-//' | sort; ls /nix"}, "bash\nnbs-test-tools\nstore\n"},
				{"store dir", []string{"sh", "-c", "stat -c %a /nix/store; mkdir /nix/store/nbs-e2e-private-out && echo made"}, "1775\nmade\n"},
				{"root read-only", []string{"sh", "-c", "touch /new 2>/dev/null || echo refused"}, "refused\n"},
				{"tmp writable", []string{"sh", "-c", "echo x > /tmp/f && cat /tmp/f"}, "x\n"},
				// Test 6: PID and IPC namespaces.
				{"pid 1", []string{"sh", "-c", "echo $$; test -d /proc/$$ && echo proc-ok"}, "1\nproc-ok\n"},
				{"exit status", []string{"sh", "-c", "exit 7"}, ""},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					res := r.shell(t, dir, c.cmd...)
					wantCode := 0
					if c.name == "exit status" {
						wantCode = 7
					}
					if res.code != wantCode || res.stdout != c.want {
						t.Errorf("nbs shell DIR %q: status %d, stdout %q; want %d, %q\nstderr: %s", c.cmd, res.code, res.stdout, wantCode, c.want, res.stderr)
					}
					assertCleanTmp(t, res)
				})
			}
			t.Run("uid_map", func(t *testing.T) {
				res := r.shell(t, dir, "cat", "/proc/self/uid_map")
				if res.code != 0 || !r.uidMapOK(res.stdout) {
					t.Errorf("uid_map %q (status %d); want 1000 <%s's host uid> 1\n%s", res.stdout, res.code, r.name, res.stderr)
				}
			})
			t.Run("namespaces", func(t *testing.T) {
				res := r.shell(t, dir, "sh", "-c", "for n in mnt net uts ipc pid user; do echo $n $(readlink /proc/self/ns/$n); done")
				if res.code != 0 {
					t.Fatalf("status %d: %s", res.code, res.stderr)
				}
				for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
					f := strings.Fields(line)
					if len(f) != 2 || f[1] == hostNS[f[0]] {
						t.Errorf("namespace %q is the host's (%s)", line, hostNS[f[0]])
					}
				}
			})
			t.Run("store dir private", func(t *testing.T) {
				if _, err := os.Stat("/nix/store/nbs-e2e-private-out"); err == nil {
					t.Error("a directory made in the sandbox's /nix/store appeared in the host's store")
				}
			})
			t.Run("command not found", func(t *testing.T) {
				res := r.shell(t, dir, "no-such-command")
				if res.code != 127 || !strings.Contains(res.stderr, "no-such-command") {
					t.Errorf("status %d, stderr %q; want 127 and the shell's message", res.code, res.stderr)
				}
			})
			t.Run("kept dir untouched", func(t *testing.T) {
				res := r.shell(t, dir, "sh", "-c", "rm -rf /build/src /build/env-vars; echo new > /build/new; chmod 000 /build")
				if res.code != 0 {
					t.Fatalf("status %d: %s", res.code, res.stderr)
				}
				if after := treeSum(t, dir); after != before {
					t.Errorf("the kept directory changed:\nbefore:\n%s\nafter:\n%s", before, after)
				}
				assertCleanTmp(t, res)
			})
		})
	}
}

// TestShellUnreadableEnvVars: recent nixpkgs writes env-vars 0600 for the
// build user. An ordinary user gets one line naming the file and the way
// out; under sudo nbs copies as root and runs the sandbox as the caller.
func TestShellUnreadableEnvVars(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)
	dir := buildFailure(t, "private")

	res := runNBS(t, u, nil, "shell", dir, "true")
	lines := strings.Split(strings.TrimSpace(res.stderr), "\n")
	if res.code == 0 || len(lines) != 1 || !strings.Contains(res.stderr, dir+"/env-vars") ||
		!strings.Contains(res.stderr, "sudo nbs shell "+dir) || !strings.Contains(res.stderr, "0600") {
		t.Errorf("as %s: status %d, stderr %q; want one line naming env-vars, its mode and sudo", u.name, res.code, res.stderr)
	}
	assertCleanTmp(t, res)

	sudo := []string{"SUDO_UID=" + strconv.Itoa(u.uid), "SUDO_GID=" + strconv.Itoa(u.gid)}
	res = runNBS(t, nil, sudo, "shell", dir, "sh", "-c", "id -u; echo $(cat /proc/self/uid_map); cat data.txt; stat -c '%a %u' env-vars")
	want := fmt.Sprintf("1000\n1000 %d 1\nsecret\n600 1000\n", u.uid)
	if res.code != 0 || res.stdout != want {
		t.Errorf("under sudo: status %d, stdout %q, want %q; stderr %s", res.code, res.stdout, want, res.stderr)
	}
	assertCleanTmp(t, res)
}

// TestShellBadInput: nbs's own errors are one line on stderr, a non-zero
// status, and nothing left behind.
func TestShellBadInput(t *testing.T) {
	empty := t.TempDir()
	noShell := t.TempDir()
	os.WriteFile(noShell+"/env-vars", []byte("declare -x HOME=\"/homeless-shelter\"\n"), 0o644)
	garbage := t.TempDir()
	os.WriteFile(garbage+"/env-vars", []byte("\x00\x01garbage\n"), 0o644)
	relShell := t.TempDir()
	os.WriteFile(relShell+"/env-vars", []byte("declare -x SHELL=\"bash\"\n"), 0o644)
	goneShell := t.TempDir()
	os.WriteFile(goneShell+"/env-vars", []byte("declare -x SHELL=\"/nix/store/00000000000000000000000000000000-gone/bin/bash\"\n"), 0o644)
	unterminated := t.TempDir()
	os.WriteFile(unterminated+"/env-vars", []byte("declare -x A=\"1\"\ndeclare -x SHELL=\"/bin/sh\n"), 0o644)
	file := empty + "/file"
	os.WriteFile(file, nil, 0o644)

	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"no args", nil, 0, "Usage"},
		{"no dir", []string{"shell"}, 2, "missing DIR"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
		{"unknown flag", []string{"shell", "--frob", "x"}, 2, "unknown flag"},
		{"missing dir", []string{"shell", "/nonexistent/nbs-dir"}, 1, "/nonexistent/nbs-dir"},
		{"a file", []string{"shell", file}, 1, file},
		{"no env-vars", []string{"shell", empty}, 1, "env-vars"},
		{"no SHELL", []string{"shell", noShell}, 1, "SHELL"},
		{"garbage", []string{"shell", garbage}, 1, "env-vars"},
		{"relative SHELL", []string{"shell", relShell}, 1, "SHELL"},
		{"missing SHELL", []string{"shell", goneShell}, 1, "does not exist"},
		{"unterminated", []string{"shell", unterminated}, 1, "unterminated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := runNBS(t, nil, nil, c.args...)
			stream := res.stderr
			if c.code == 0 {
				stream = res.stdout
			}
			if res.code != c.code || !strings.Contains(stream, c.want) {
				t.Errorf("nbs %q: status %d, stderr %q; want %d and %q", c.args, res.code, res.stderr, c.code, c.want)
			}
			if c.code != 0 && (strings.Count(strings.TrimSpace(res.stderr), "\n") > 0 || strings.Contains(res.stderr, "goroutine")) {
				t.Errorf("nbs %q: stderr is not one line: %q", c.args, res.stderr)
			}
			assertCleanTmp(t, res)
		})
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(nbsBin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "nbs ") {
		t.Errorf("nbs --version: %q, %v", out, err)
	}
}

// TestShellSymlink: a link to a kept directory (a shortcut the user
// made) is entered like the directory itself.
func TestShellSymlink(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fail")
	link := filepath.Join(t.TempDir(), "kept")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	res := runNBS(t, nil, nil, "shell", link, "sh", "-c", "cat /build/env-vars >/dev/null && echo entered")
	if res.code != 0 || res.stdout != "entered\n" {
		t.Errorf("nbs shell LINK: status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
}
