//go:build linux

package main

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/sandbox/shquote"
)

// A real remote builder on this machine: an sshd on 127.0.0.1 in its own
// mount and PID namespaces, with its own /tmp, /nix (an empty store: Nix
// copies the build's inputs over), /root, /run and /etc/nix/nix.conf,
// reached through Host aliases of a private ssh config that the tests
// pass in NIX_SSHOPTS (-F), with a key they generate. The host's nix-store
// and nix-daemon (Debian's /usr/bin) serve as the builder's Nix, building
// as root without a daemon. No nbs is on its PATH, so nbs copies itself.
type sshBuilder struct {
	pid     int    // sshd, the namespace's init, as this process sees it
	root    string // its filesystem: /proc/PID/root
	pidNS   string // its PID namespace (readlink /proc/PID/ns/pid)
	daemon  int    // its nix-daemon, when it has one
	sshOpts string // NIX_SSHOPTS
	key     string // the client's private key
	log     *lockedBuffer
	// installed: an nbs is on the builder's PATH (whose cache is its
	// own), else nbs copies itself there for each session.
	installed bool
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The aliases of the private ssh config: with the key in the config, and
// without it (the builder line's third field then names it).
const (
	builderAlias      = "nbs-builder"
	builderAliasNoKey = "nbs-builder-nokey"
)

// builderStart is run by unshare as the namespace's first process: it
// gives the builder its own directories, then becomes sshd.
const builderStart = `set -e
state=$1
mount --bind "$state/root" /root
mount --bind "$state/etc-nix" /etc/nix
# The builder has this machine's users, so it shares the locks that
# hand them out (see startBuilder).
mount --bind /nix/var/nix/userpool "$state/userpool"
mount -t tmpfs -o mode=0755 nbs-builder-nix /nix
mkdir -p /nix/var/nix/userpool
mount --bind "$state/userpool" /nix/var/nix/userpool
if [ -n "$3" ]; then
  # nbs installed on the builder's PATH
  cp "$3" "$state/nbs"
  mount -t tmpfs -o mode=0755 nbs-builder-bin /usr/local/bin
  cp "$state/nbs" /usr/local/bin/nbs
fi
mount -t tmpfs -o mode=0755 nbs-builder-run /run
mkdir -p /run/sshd
restrict=
if [ -n "$4" ]; then restrict=/run/restrict; cp "$4" $restrict; fi
mount -t tmpfs -o mode=1777 nbs-builder-tmp /tmp
if [ "$2" = daemon ]; then nix-daemon </dev/null >/dev/null 2>&1 & fi
# $4: a program that restricts sshd as a default Docker container is
exec $restrict /usr/sbin/sshd -D -e -f /root/sshd_config
`

// builderKind says what else the builder has.
type builderKind int

const (
	plainBuilder builderKind = iota
	// a nix-daemon of its own (root's nix-store and nix-daemon --stdio
	// still build without it unless the builder URI says
	// remote-store=daemon)
	daemonBuilder
	// nbs on its PATH (/usr/local/bin)
	nbsBuilder
	// a default Docker container's restrictions (testdata/restrict) and
	// sandbox = false, filter-syscalls = false, as the nixos/nix image
	// used as a builder has them
	dockerBuilder
	// an nbs on its PATH from before replay --remote: it answers
	// --version and the --help of shell (with --run) and replay
	// (without --remote), and fails if run for anything else
	oldNBSBuilder
)

// oldNBS is the nbs of oldNBSBuilder.
const oldNBS = `#!/bin/sh
case "$1 $2" in
"--version "*) echo "nbs 0.1.0" ;;
"shell --help") echo "      --run CMD   evaluate CMD" ;;
"replay --help") echo "      --run CMD   evaluate CMD" ;;
*) echo "the old nbs ran: $*" >&2; exit 99 ;;
esac
`

func startBuilder(t *testing.T, kind builderKind) *sshBuilder {
	t.Helper()
	requireNix(t)
	requireUserNS(t)
	requireRoot(t)
	for _, p := range []string{"/usr/sbin/sshd", "/usr/bin/ssh", "/usr/bin/ssh-keygen", "/usr/bin/unshare", "/usr/bin/nix-store", "/usr/bin/nix-daemon"} {
		if _, err := os.Stat(p); err != nil {
			missing(t, "%s not found (Debian packages openssh-server, openssh-client, util-linux, nix-bin)", p)
		}
	}
	state := t.TempDir()
	root := filepath.Join(state, "root")
	client := filepath.Join(state, "client")
	// The builder runs on this machine's kernel with its users: its Nix
	// and its nbs lock nixbld users in this machine's userpool, as the
	// local Nix and nbs do. With a pool of its own, a local build could
	// take the nixbld user of the builder's sandbox and kill every
	// process of it (Nix does before it builds), and the other way round.
	if err := os.MkdirAll("/nix/var/nix/userpool", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(root, ".ssh"), filepath.Join(state, "etc-nix"), filepath.Join(state, "userpool"), client} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	keygen := func(path string) {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "nbs-test", "-f", path).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v\n%s", err, out)
		}
	}
	keygen(filepath.Join(root, "host_key"))
	key := filepath.Join(client, "id_ed25519")
	keygen(key)
	copyFile(t, key+".pub", filepath.Join(root, ".ssh", "authorized_keys"))

	port := freePort(t)
	write(t, filepath.Join(root, "sshd_config"), fmt.Sprintf(`ListenAddress 127.0.0.1
Port %d
HostKey /root/host_key
AuthorizedKeysFile /root/.ssh/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile none
PrintMotd no
LogLevel ERROR
`, port))
	conf, restrict := "sandbox = true\n", ""
	if kind == dockerBuilder {
		conf, restrict = "sandbox = false\nfilter-syscalls = false\n", restrictBin(t)
	}
	write(t, filepath.Join(state, "etc-nix", "nix.conf"), "# the test builder's own nix.conf\n"+conf+"build-users-group = nixbld\nsubstituters =\n")
	hostPub, err := os.ReadFile(filepath.Join(root, "host_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(client, "known_hosts"), "nbs-builder "+string(hostPub))
	common := fmt.Sprintf(`  HostName 127.0.0.1
  Port %d
  User root
  HostKeyAlias nbs-builder
  UserKnownHostsFile %s
  StrictHostKeyChecking yes
  BatchMode yes
  IdentitiesOnly yes
  LogLevel ERROR
`, port, filepath.Join(client, "known_hosts"))
	config := filepath.Join(client, "config")
	write(t, config, "Host "+builderAlias+"\n"+common+"  IdentityFile "+key+"\n\nHost "+builderAliasNoKey+"\n"+common)

	installed := map[bool]string{true: nbsBin}[kind == nbsBuilder]
	if kind == oldNBSBuilder {
		installed = filepath.Join(state, "old-nbs")
		write(t, installed, oldNBS)
		os.Chmod(installed, 0o755)
	}
	b := &sshBuilder{sshOpts: "-F " + config, key: key, log: &lockedBuffer{}, installed: installed != ""}
	cmd := exec.Command("unshare", "--mount", "--pid", "--fork", "--mount-proc", "--propagation", "private", "--kill-child",
		"sh", "-c", builderStart, "sh", state, map[bool]string{true: "daemon"}[kind == daemonBuilder], installed, restrict)
	cmd.Stdout, cmd.Stderr = b.log, b.log
	if err := cmd.Start(); err != nil {
		missing(t, "start the builder's sshd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("builder's sshd log:\n%s", b.log.String())
		}
	})
	// sshd is unshare's child, pid 1 of the new namespace.
	firstChild := func(pid int) (child int) {
		kids, _ := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
		if f := strings.Fields(string(kids)); len(f) > 0 {
			child, _ = strconv.Atoi(f[0])
		}
		return child
	}
	eventually(func() bool { b.pid = firstChild(cmd.Process.Pid); return b.pid != 0 })
	if b.pid == 0 {
		t.Fatalf("no builder process; log:\n%s", b.log.String())
	}
	b.root = fmt.Sprintf("/proc/%d/root", b.pid)
	if kind == daemonBuilder {
		// Once builderStart became sshd, its only child is nix-daemon
		// (before, it may be a mount).
		eventually(func() bool {
			exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", b.pid))
			b.daemon = firstChild(b.pid)
			return exe == "/usr/sbin/sshd" && b.daemon != 0
		})
	}
	b.pidNS, _ = os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", b.pid))
	var out []byte
	if !eventually(func() bool {
		out, err = exec.Command("ssh", append(strings.Fields(b.sshOpts), builderAlias, "echo ready")...).CombinedOutput()
		return err == nil && strings.TrimSpace(string(out)) == "ready"
	}) {
		t.Fatalf("builder's sshd does not answer: %v %s\nlog:\n%s", err, out, b.log.String())
	}
	return b
}

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	write(t, to, string(b))
}

// tmp lists the builder's /tmp.
func (b *sshBuilder) tmp(t *testing.T) []string {
	t.Helper()
	es, err := os.ReadDir(b.root + "/tmp")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// processes are the builder's processes other than the listening sshd,
// waiting (up to hang) for ending sessions to go.
func (b *sshBuilder) processes() []string {
	var left []string
	eventually(func() bool {
		left = left[:0]
		ps, _ := filepath.Glob("/proc/[0-9]*")
		for _, p := range ps {
			if ns, _ := os.Readlink(p + "/ns/pid"); ns != b.pidNS || p == fmt.Sprintf("/proc/%d", b.pid) || p == fmt.Sprintf("/proc/%d", b.daemon) {
				continue
			}
			cmdline, _ := os.ReadFile(p + "/cmdline")
			left = append(left, filepath.Base(p)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
		return len(left) == 0
	})
	return left
}

// localNBS lists the processes of the nbs under test still running here.
func localNBS() []string {
	var left []string
	ps, _ := filepath.Glob("/proc/[0-9]*")
	for _, p := range ps {
		exe, _ := os.Readlink(p + "/exe")
		if exe == nbsBin {
			cmdline, _ := os.ReadFile(p + "/cmdline")
			left = append(left, filepath.Base(p)+": "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return left
}

// checkClean: nothing of nbs is left on the builder (its /tmp holds only
// Nix's kept directories, no process runs there, and the nbs it brought
// kept no cache in the ssh user's home) or here.
func (b *sshBuilder) checkClean(t *testing.T) {
	t.Helper()
	for _, e := range b.tmp(t) {
		if !strings.HasPrefix(e, "nix-build-") {
			t.Errorf("left in the builder's /tmp: %s", e)
		}
	}
	if p := b.processes(); len(p) > 0 {
		t.Errorf("left running on the builder: %q", p)
	}
	// The copy nbs brought kept its cache in its private directory.
	if _, err := os.Lstat(b.root + "/root/.cache/nbs"); !b.installed && err == nil {
		t.Errorf("left on the builder: ~/.cache/nbs")
	}
	eventually(func() bool { return len(localNBS()) == 0 })
	if p := localNBS(); len(p) > 0 {
		t.Errorf("nbs left running here: %q", p)
	}
}

func remoteNix(t *testing.T) string {
	p, err := filepath.Abs("../../testdata/remote")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// decoy puts directories named like the remote build's kept ones into
// the local /tmp: nbs must never enter them.
func decoy(t *testing.T, name string) {
	for i := 0; i < 4; i++ {
		d := fmt.Sprintf("/tmp/nix-build-%s.drv-%d", name, i)
		if err := os.MkdirAll(d+"/src", 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
		write(t, d+"/src/file.txt", "DECOY: a local directory of the same name\n")
		write(t, d+"/env-vars", "declare -x SHELL=\"/bin/bash-static\"\ndeclare -x PWD=\"/build/src\"\n")
	}
}

// run runs nbs as root in a fresh working directory, with NIX_SSHOPTS.
func (b *sshBuilder) run(t *testing.T, args ...string) result {
	t.Helper()
	wd := t.TempDir()
	old, _ := os.Getwd()
	os.Chdir(wd)
	defer os.Chdir(old)
	return runNBS(t, nil, []string{"NIX_SSHOPTS=" + b.sshOpts}, args...)
}

// checkKeptFile checks the files the remote build left in its kept
// directory dir on the builder.
func (b *sshBuilder) checkKeptFile(t *testing.T, dir string) {
	t.Helper()
	got, err := os.ReadFile(b.root + dir + "/src/file.txt")
	if err != nil || string(got) != "from the remote build\n" {
		t.Errorf("remote kept file: %q, %v", got, err)
	}
	if _, err := os.Lstat(b.root + dir + "/src/link"); err != nil {
		t.Errorf("remote kept link: %v", err)
	}
}

// runPrinted runs `nbs SHELL-REMOTE-ARGS sh -c SCRIPT`, the command nbs
// build printed with a command added, as a user would type it.
func (b *sshBuilder) runPrinted(shellRemote, script string) (code int, stdout, stderr string) {
	sh := exec.Command("sh", "-c", shquote.Quote(nbsBin)+" "+shellRemote+" sh -c "+shquote.Quote(script))
	sh.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "NIX_SSHOPTS=" + b.sshOpts}
	var out, errOut bytes.Buffer
	sh.Stdout, sh.Stderr = &out, &errOut
	sh.Run()
	return sh.ProcessState.ExitCode(), out.String(), errOut.String()
}

var enterRE = regexp.MustCompile(`(?m)^  enter it with: nbs (shell --remote .*)$`)

// TestRemoteBuild: a build that fails on a remote builder (ssh:// and
// ssh-ng://) is entered on that builder.
func TestRemoteBuild(t *testing.T) {
	b := startBuilder(t, plainBuilder)
	cases := []struct {
		proto, builders string
	}{
		// The key in the ssh config.
		{"ssh", "ssh://" + builderAlias + " x86_64-linux"},
		// The key in the builder line, as Nix passes it: -i KEY.
		{"ssh-ng", "ssh-ng://" + builderAliasNoKey + " x86_64-linux " + b.key},
	}
	for _, c := range cases {
		t.Run(c.proto, func(t *testing.T) {
			name := fmt.Sprintf("nbs-remote-%s-%d", c.proto, time.Now().UnixNano()%1_000_000_000)
			decoy(t, name)
			build := func(run ...string) result {
				args := append(append([]string{"build"}, run...), "--max-jobs", "0", "--builders", c.builders,
					remoteNix(t), "-A", "fail", "--argstr", "name", name, "--argstr", "nonce", nonce(t)+strings.Join(run, ""))
				return b.run(t, args...)
			}

			t.Run("run", func(t *testing.T) {
				res := build("--run", "cat /build/src/file.txt; echo changed > /build/src/file.txt; rm /build/src/link; hostname; id -u; exit 5")
				if res.code != 5 || res.stdout != "from the remote build\nlocalhost\n1000\n" {
					t.Fatalf("status %d, stdout %q; want 5 and the remote build's file, localhost, 1000\nstderr: %s", res.code, res.stdout, res.stderr)
				}
				if !strings.Contains(res.stderr, "nbs: "+name+" failed on "+c.proto+"://") || !strings.Contains(res.stderr, "entering its sandbox on that builder") {
					t.Errorf("no message about the remote failure:\n%s", res.stderr)
				}
				dirs := keptDirsIn(res.stderr)
				if len(dirs) != 1 {
					t.Fatalf("kept directories %q", dirs)
				}
				// The kept directory on the builder is untouched.
				b.checkKeptFile(t, dirs[0])
				b.checkClean(t)
				assertCleanTmp(t, res)
			})

			t.Run("no terminal", func(t *testing.T) {
				res := build()
				m := enterRE.FindStringSubmatch(res.stderr)
				if res.code != 1 || m == nil {
					t.Fatalf("status %d; want nix-build's 1 and an 'nbs shell --remote' command\nstderr: %s", res.code, res.stderr)
				}
				dirs := keptDirsIn(res.stderr)
				if len(dirs) != 1 {
					t.Fatalf("kept directories %q", dirs)
				}
				before := treeSum(t, b.root+dirs[0])
				// The printed command works as printed.
				code, stdout, stderr := b.runPrinted(m[1], "cat src/file.txt; hostname; rm -rf /build/src; exit 7")
				if code != 7 || stdout != "from the remote build\nlocalhost\n" {
					t.Errorf("%s: status %d, stdout %q\nstderr: %s", m[1], code, stdout, stderr)
				}
				if after := treeSum(t, b.root+dirs[0]); after != before {
					t.Errorf("the remote kept directory changed:\n%s\n---\n%s", before, after)
				}
				b.checkClean(t)
			})
		})
	}

	t.Run("not kept", func(t *testing.T) {
		// --no-keep-failed: nbs leaves the builders alone, and says why
		// there is nothing to enter.
		name := fmt.Sprintf("nbs-remote-nokeep-%d", time.Now().UnixNano()%1_000_000_000)
		res := b.run(t, "build", "--run", "true", "--no-keep-failed", "--max-jobs", "0", "--builders", "ssh-ng://"+builderAlias+" x86_64-linux",
			remoteNix(t), "-A", "fail", "--argstr", "name", name, "--argstr", "nonce", nonce(t))
		if res.code != 1 || !strings.Contains(res.stderr, "failed on ssh-ng://"+builderAlias+" (builder exit 3), which kept no build directory: ") {
			t.Errorf("status %d\nstderr: %s", res.code, res.stderr)
		}
		b.checkClean(t)
	})

	t.Run("interrupted", func(t *testing.T) {
		// SIGTERM to nbs while the command runs on the builder: nbs
		// stops, and nothing of it is left there.
		name := fmt.Sprintf("nbs-remote-int-%d", time.Now().UnixNano()%1_000_000_000)
		wd := t.TempDir()
		cmd := exec.Command(nbsBin, "build", "--run", "echo started; sleep 600", "--max-jobs", "0", "--builders", "ssh://"+builderAlias+" x86_64-linux",
			remoteNix(t), "-A", "fail", "--argstr", "name", name, "--argstr", "nonce", nonce(t))
		cmd.Dir = wd
		cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "NIX_SSHOPTS=" + b.sshOpts}
		var stdout, stderr lockedBuffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		eventually(func() bool { return strings.Contains(stdout.String(), "started") })
		cmd.Process.Signal(syscall.SIGTERM)
		code := waitExit(t, cmd, hang)
		if code != 128+int(syscall.SIGTERM) {
			t.Errorf("status %d, want %d\nstdout: %s\nstderr: %s", code, 128+int(syscall.SIGTERM), stdout.String(), stderr.String())
		}
		b.checkClean(t)
	})
}

// TestRemoteDaemon: a builder whose builds go through its own nix-daemon
// (remote-store=daemon makes root's remote Nix use it). The facts of
// issue 8: behind a daemon, ssh:// with nbs's remote-program keeps the
// directory (nix-store passes keep-failed on to the daemon), ssh-ng://
// never does (nix-daemon --stdio only relays), and nbs says what to set.
func TestRemoteDaemon(t *testing.T) {
	b := startBuilder(t, daemonBuilder)
	name := fmt.Sprintf("nbs-remote-daemon-%d", time.Now().UnixNano()%1_000_000_000)
	decoy(t, name)
	build := func(builder string) result {
		return b.run(t, "build", "--run", "cat /build/src/file.txt; exit 4", "--max-jobs", "0", "--builders", builder+" x86_64-linux",
			remoteNix(t), "-A", "fail", "--argstr", "name", name, "--argstr", "nonce", nonce(t)+builder)
	}
	res := build("ssh://" + builderAlias + "?remote-store=daemon")
	if res.code != 4 || res.stdout != "from the remote build\n" {
		t.Errorf("ssh:// behind a daemon: status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	res = build("ssh-ng://" + builderAlias + "?remote-store=daemon")
	// Nix 2.34's nix-daemon --stdio passes keep-failed on (2.8's does
	// not): then nbs must simply enter the kept directory.
	kept := res.code == 4 && res.stdout == "from the remote build\n"
	explained := res.code == 1 && strings.Contains(res.stderr, "which kept no build directory: its nix-daemon --stdio hands builds to a nix-daemon running there") &&
		strings.Contains(res.stderr, "set keep-failed = true in the builder's nix.conf")
	if !kept && !explained {
		t.Errorf("ssh-ng:// behind a daemon: status %d\nstderr: %s", res.code, res.stderr)
	}
	b.checkClean(t)
}

// TestRemoteInstalled: with nbs on the builder's PATH, nbs uses it and
// copies nothing.
func TestRemoteInstalled(t *testing.T) {
	b := startBuilder(t, nbsBuilder)
	name := fmt.Sprintf("nbs-remote-installed-%d", time.Now().UnixNano()%1_000_000_000)
	decoy(t, name)
	res := b.run(t, "build", "--debug", "--run", "cat /build/src/file.txt; exit 4", "--max-jobs", "0", "--builders", "ssh://"+builderAlias+" x86_64-linux",
		remoteNix(t), "-A", "fail", "--argstr", "name", name, "--argstr", "nonce", nonce(t))
	if res.code != 4 || !strings.HasPrefix(res.stdout, "from the remote build\n") {
		t.Errorf("status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	if strings.Contains(res.stderr, "copying nbs to the builder") || !strings.Contains(res.stderr, "/usr/local/bin/nbs") {
		t.Errorf("the installed nbs was not used:\n%s", res.stderr)
	}
	b.checkClean(t)
}

// TestRemoteInteractive drives `nbs build` through a terminal to a
// failure on the builder: prompt, Ctrl-C, window size, exit status.
func TestRemoteInteractive(t *testing.T) {
	b := startBuilder(t, plainBuilder)
	tm := newTerm(t)
	name := fmt.Sprintf("nbs-remote-tty-%d", time.Now().UnixNano()%1_000_000_000)
	decoy(t, name)
	tmp := t.TempDir()
	cmd := exec.Command(nbsBin, "build", "--max-jobs", "0", "--builders", "ssh://"+builderAlias+" x86_64-linux",
		remoteNix(t), "-A", "fail", "--argstr", "name", name, "--argstr", "nonce", nonce(t))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=/nonexistent", "TERM=xterm", "NO_COLOR=1", "NIX_SSHOPTS=" + b.sshOpts}
	done := tm.start(t, cmd)
	defer cmd.Process.Kill()

	tm.expect(t, "entering its sandbox on that builder")
	tm.expect(t, "[nbs "+name+"] /build/src $ ")
	tm.send("cat file.txt; id -u; tty\r")
	tm.expect(t, "from the remote build")
	tm.expect(t, "1000")
	tm.expect(t, "/dev/pts/0")

	tm.send("sleep 97\r")
	// Ctrl-C once sleep runs in the sandbox on the builder.
	waitRunning(t, b.pid, "sleep 97")
	tm.send("\x03")
	tm.send("echo after-int $?\r")
	tm.expect(t, "after-int 130")

	// The kernel sends SIGWINCH to the terminal's foreground process
	// group, ssh included, which tells the builder.
	tm.resize(t, 41, 123)
	tm.expectSize(t, "41 123")

	tm.send("exit 3\r")
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("nbs exited %d, want nix-build's 1", code)
		}
	case <-time.After(hang):
		t.Fatal("nbs did not exit after the remote shell did")
	}
	b.checkClean(t)
	if e := tmpEntries(tmp); len(e) > 0 {
		t.Errorf("TMPDIR not cleaned: %v", e)
	}
}

// TestFlake: `nbs build` with a flake reference runs `nix build` (with
// the experimental features Nix 2.8 needs, for that call only) and
// behaves as with nix-build.
func TestFlake(t *testing.T) {
	for _, r := range buildRunners(t) {
		t.Run(r.name, func(t *testing.T) {
			// The unprivileged user must reach it: not under t.TempDir.
			dir, err := os.MkdirTemp("", "nbs-e2e-flake-")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			os.Chmod(dir, 0o777)
			src, err := filepath.Abs("../../testdata/remote/flake/flake.nix")
			if err != nil {
				t.Fatal(err)
			}
			copyFile(t, src, filepath.Join(dir, "flake.nix"))
			for from, to := range map[string]string{"/bin/bash-static": "bash", "/bin/busybox": "busybox"} {
				copyFile(t, from, filepath.Join(dir, to))
				os.Chmod(filepath.Join(dir, to), 0o755)
			}
			os.Chmod(filepath.Join(dir, "flake.nix"), 0o644)
			flakeRun := func(args ...string) result {
				old, _ := os.Getwd()
				os.Chdir(dir)
				defer os.Chdir(old)
				return runNBS(t, r.user, nil, append([]string{"build"}, args...)...)
			}

			res := flakeRun("--run", "cat /build/src/file.txt; id -u; exit 6", ".#bad")
			cleanupKept(t, res.stderr)
			if res.code != 6 || res.stdout != "from the flake build\n1000\n" {
				t.Errorf("nbs build --run … .#bad: status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
			}

			res = flakeRun(".#good")
			link, err := os.Readlink(filepath.Join(dir, "result"))
			if res.code != 0 || err != nil || !strings.HasPrefix(link, "/nix/store/") || !strings.HasSuffix(link, "-nbs-flake-good") {
				t.Errorf("nbs build .#good: status %d, result -> %q (%v)\nstderr: %s", res.code, link, err, res.stderr)
			}
			if strings.Contains(res.stderr, "nbs:") {
				t.Errorf("nbs spoke on success: %s", res.stderr)
			}
			os.Remove(filepath.Join(dir, "result"))

			// nbs's flags after Nix's go to Nix; nbs says so.
			res = flakeRun(".#bad", "--run", "true")
			if res.code == 0 || !strings.Contains(res.stderr, "nbs: --run is nbs's own flag; give it before nix's arguments") {
				t.Errorf("misplaced --run: status %d\nstderr: %s", res.code, res.stderr)
			}
		})
	}
}

var replayingRE = regexp.MustCompile(`nbs: replaying nbs-replay-stdenv-fail \(the original failed in buildPhase, exit 1\) in a new sandbox \((/nix/store/\S+\.drv)\)`)

// TestRemoteReplay: a stdenv-like build that fails on the builder is
// replayed there: nbs build --replay --run sees the failing phase's
// live state (a variable it did not export, its function, its late
// export, its directory) on the builder, which has no .drv of it, and
// exits with CMD's status; nbs replay --remote does the same for the
// failure afterwards. Nothing is left on the builder.
func TestRemoteReplay(t *testing.T) {
	b := startBuilder(t, plainBuilder)
	script := `echo "[$phaseLocal] [$LATE_EXPORT] [$EARLY_EXPORT] [$configureLocal] $PWD $curPhase"; phaseFn; ls /nix/store | grep -c '\.drv$'; exit 42`
	want := "[not-exported] [late] [configured] [c] /build/src/deep buildPhase\nphaseFn here\n0\n"
	for _, proto := range []string{"ssh", "ssh-ng"} {
		t.Run(proto, func(t *testing.T) {
			uri := proto + "://" + builderAlias
			res := b.run(t, "build", "--debug", "--replay", "--run", script, "--max-jobs", "0", "--builders", uri+" x86_64-linux",
				replayNix(t), "-A", "stdenv", "--argstr", "nonce", nonce(t))
			if res.code != 42 || !strings.HasSuffix(res.stdout, want) {
				t.Fatalf("status %d, stdout %q; want 42 and the failing phase's state\nstderr: %s", res.code, res.stdout, res.stderr)
			}
			m := replayingRE.FindStringSubmatch(res.stderr)
			for _, w := range []string{
				"nbs: nbs-replay-stdenv-fail failed on " + uri + " (builder exit 1); replaying it on that builder over ssh",
				"copying nbs to the builder",
				"nbs: the replay failed in buildPhase (exit 1) at: false",
			} {
				if !strings.Contains(res.stderr, w) || m == nil {
					t.Errorf("stderr lacks %q or the replaying line:\n%s", w, res.stderr)
				}
			}
			if strings.Contains(res.stdout, "not reached") {
				t.Errorf("the build went on after the stop:\n%s", res.stdout)
			}
			b.checkClean(t)
			assertCleanTmp(t, res)
			if m == nil {
				return
			}
			drv := m[1]
			if _, err := os.Stat(b.root + drv); err == nil {
				t.Errorf("%s is in the builder's store: the test proves nothing", drv)
			}

			// nbs replay --remote, with a command and --break.
			res = b.run(t, "replay", "--remote", uri, drv, "eval", `echo "$PWD $phaseLocal"; exit 7`)
			if res.code != 7 || !strings.HasSuffix(res.stdout, "/build/src/deep not-exported\n") || !strings.Contains(res.stderr, "nbs: replaying nbs-replay-stdenv-fail (the original failed in buildPhase) in a new sandbox ("+drv+")") {
				t.Errorf("replay --remote DRV CMD: status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
			}
			b.checkClean(t)
			res = b.run(t, "replay", "--remote", uri, "--break", "buildPhase", "--run", `echo "<${LATE_EXPORT-} $EARLY_EXPORT>"`, drv)
			if res.code != 0 || !strings.Contains(res.stdout, "< configured>") || !strings.Contains(res.stderr, "nbs: stopped before buildPhase (--break)") {
				t.Errorf("replay --remote --break: status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
			}
			b.checkClean(t)
			if proto != "ssh" {
				// Without a terminal or --run, nbs prints the command,
				// which works as printed: with the key of the builder
				// line, which the URI alone would not have.
				res := b.run(t, "build", "--replay", "--max-jobs", "0", "--builders", "ssh-ng://"+builderAliasNoKey+" x86_64-linux "+b.key,
					replayNix(t), "-A", "stdenv", "--argstr", "nonce", nonce(t)+"printed")
				m := regexp.MustCompile(`(?m)^nbs: nbs-replay-stdenv-fail failed on ssh-ng://` + builderAliasNoKey + ` \(builder exit 1\); replay it with: nbs (replay --remote \S+ /nix/store/\S+\.drv)$`).FindStringSubmatch(res.stderr)
				if res.code != 1 || m == nil {
					t.Fatalf("--replay without a terminal: status %d\nstderr: %s", res.code, res.stderr)
				}
				code, stdout, stderr := b.runPrinted(m[1], "exit 6")
				if code != 6 || !strings.Contains(stdout, "Running phase: buildPhase") || !strings.Contains(stderr, "nbs: the replay failed in buildPhase (exit 1) at: false") {
					t.Errorf("%s: status %d, stdout %q\nstderr: %s", m[1], code, stdout, stderr)
				}
				b.checkClean(t)
				return
			}

			// SIGTERM while CMD runs at the stop on the builder: nbs
			// exits 128+15, nothing is left there.
			cmd := exec.Command(nbsBin, "replay", "--remote", uri, "--run", "echo started; sleep 600", drv)
			cmd.Dir = t.TempDir()
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", "NIX_SSHOPTS=" + b.sshOpts}
			var stdout, stderr lockedBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			eventually(func() bool { return strings.Contains(stdout.String(), "started") })
			cmd.Process.Signal(syscall.SIGTERM)
			if code := waitExit(t, cmd, hang); code != 128+int(syscall.SIGTERM) {
				t.Errorf("SIGTERM: status %d, want %d\nstdout: %s\nstderr: %s", code, 128+int(syscall.SIGTERM), stdout.String(), stderr.String())
			}
			b.checkClean(t)

			// A builder that lacks the inputs (an empty store: it never
			// built this) says which, in one line.
			empty := startBuilder(t, plainBuilder)
			res = empty.run(t, "replay", "--remote", uri, "--run", "true", drv)
			if res.code == 0 || !regexp.MustCompile(`(?m)\Anbs: nbs-replay-stdenv-fail: \d+ of the build's inputs are not on this builder \(\S+\): /nix/store/\S+.*; build it on this builder again`).MatchString(res.stderr) || strings.Count(res.stderr, "\n") != 1 {
				t.Errorf("replay on a builder without the inputs: status %d\nstderr: %s", res.code, res.stderr)
			}
			empty.checkClean(t)

			// Bad builders: one line each, nothing left.
			for _, c := range []struct{ uri, want string }{
				{"unix:///nix/var/nix/daemon-socket/socket", "not an ssh:// or ssh-ng:// builder"},
				{"ssh://127.0.0.1:1", "Connection refused; check that 'ssh -p 1 127.0.0.1' works"},
			} {
				res := b.run(t, "replay", "--remote", c.uri, "--run", "true", drv)
				if res.code == 0 || !strings.Contains(res.stderr, c.want) || strings.Count(res.stderr, "\n") != 1 {
					t.Errorf("replay --remote %s: status %d, want one line with %q\nstderr: %s", c.uri, res.code, c.want, res.stderr)
				}
				assertCleanTmp(t, res)
			}
		})
	}
}

// TestRemoteReplayOldNBS: an installed nbs from before replay --remote
// is not used for a replay; a copy of this one is.
func TestRemoteReplayOldNBS(t *testing.T) {
	b := startBuilder(t, oldNBSBuilder)
	res := b.run(t, "build", "--debug", "--replay", "--run", `echo "[$phaseLocal]"; exit 3`, "--max-jobs", "0", "--builders", "ssh://"+builderAlias+" x86_64-linux",
		replayNix(t), "-A", "stdenv", "--argstr", "nonce", nonce(t))
	if res.code != 3 || !strings.HasSuffix(res.stdout, "[not-exported]\n") || !strings.Contains(res.stderr, "copying nbs to the builder") || strings.Contains(res.stderr, "the old nbs ran") {
		t.Errorf("status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
	b.checkClean(t)
}

// TestRemoteReplayInteractive: nbs build --replay on a terminal, the
// build failing on the builder: the interactive shell at the stop runs
// there, with the failing phase's state; Ctrl-C reaches its command;
// nbs exits with nix-build's status.
func TestRemoteReplayInteractive(t *testing.T) {
	b := startBuilder(t, plainBuilder)
	tm := newTerm(t)
	tmp := t.TempDir()
	cmd := exec.Command(nbsBin, "build", "--replay", "--max-jobs", "0", "--builders", "ssh://"+builderAlias+" x86_64-linux",
		replayNix(t), "-A", "stdenv", "--argstr", "nonce", nonce(t))
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=/nonexistent", "TERM=xterm", "NO_COLOR=1", "NIX_SSHOPTS=" + b.sshOpts}
	done := tm.start(t, cmd)
	defer cmd.Process.Kill()

	tm.expect(t, "replaying it on that builder over ssh")
	tm.expect(t, "nbs: the replay failed in buildPhase (exit 1) at: false")
	tm.expect(t, "[nbs replay nbs-replay-stdenv-fail] /build/src/deep $ ")
	tm.send(`echo "<$phaseLocal $LATE_EXPORT $curPhase>"; phaseFn; tty` + "\r")
	tm.expect(t, "<not-exported late buildPhase>")
	tm.expect(t, "phaseFn here")
	tm.expect(t, "/dev/pts/0")
	tm.send("sleep 98\r")
	waitRunning(t, b.pid, "sleep 98")
	tm.send("\x03")
	tm.send("echo after-int $?\r")
	tm.expect(t, "after-int 130")
	tm.send("exit 3\r")
	select {
	case code := <-done:
		if code != 1 {
			t.Errorf("nbs exited %d, want nix-build's 1", code)
		}
	case <-time.After(hang):
		t.Fatal("nbs did not exit after the remote shell did")
	}
	b.checkClean(t)
	if e := tmpEntries(tmp); len(e) > 0 {
		t.Errorf("TMPDIR not cleaned: %v", e)
	}
}
