package main

import (
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/wrapper"
)

func TestParseRemote(t *testing.T) {
	cases := []struct {
		uri                  string
		scheme, dest, host   string
		port, key, hostKey   string
		compress, shouldFail bool
	}{
		{uri: "ssh://nix-docker", scheme: "ssh", dest: "nix-docker", host: "nix-docker"},
		{uri: "nix-docker", scheme: "ssh", dest: "nix-docker", host: "nix-docker"},
		{uri: "ssh-ng://me@builder.example:2222", scheme: "ssh-ng", dest: "me@builder.example", host: "builder.example", port: "2222"},
		{uri: "ssh://root@[::1]:22", scheme: "ssh", dest: "root@::1", host: "::1", port: "22"},
		{uri: "ssh://fe80::1", scheme: "ssh", dest: "fe80::1", host: "fe80::1"},
		{uri: "ssh://a@b@c", scheme: "ssh", dest: "a@b@c", host: "c"},
		{uri: "ssh-ng://h?ssh-key=/root/.ssh/k%20ey&compress=true&base64-ssh-public-host-key=c3NoLWVkMjU1MTkgQUFBQQ%3D%3D&remote-program=nix-daemon%20--option%20keep-failed%20true",
			scheme: "ssh-ng", dest: "h", host: "h", key: "/root/.ssh/k ey", hostKey: "c3NoLWVkMjU1MTkgQUFBQQ==", compress: true},
		{uri: "ssh://h/", scheme: "ssh", dest: "h", host: "h"},
		{uri: "daemon", shouldFail: true},
		{uri: "auto?root=/x", shouldFail: true},
		{uri: "unix:///run/nix.sock", shouldFail: true},
		{uri: "local", shouldFail: true},
		{uri: "s3://bucket", shouldFail: true},
		{uri: "ssh://", shouldFail: true},
		{uri: "ssh://-oProxyCommand=x", shouldFail: true},
		{uri: "ssh://-l@h", shouldFail: true},
		{uri: "ssh://h?ssh-key=-oProxyCommand=x", shouldFail: true},
		{uri: "ssh://h:port", shouldFail: true},
		{uri: "ssh://[::1", shouldFail: true},
	}
	for _, c := range cases {
		got, err := parseRemote(c.uri)
		if c.shouldFail {
			if err == nil {
				t.Errorf("parseRemote(%q) = %+v; want an error", c.uri, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseRemote(%q): %v", c.uri, err)
			continue
		}
		if got.Scheme != c.scheme || got.Dest != c.dest || got.Host != c.host || got.Port != c.port ||
			got.Key != c.key || got.HostKey != c.hostKey || got.Compress != c.compress {
			t.Errorf("parseRemote(%q) = %+v", c.uri, got)
		}
	}
}

func TestSSHArgs(t *testing.T) {
	tg := &remoteTarget{Dest: "me@h", Host: "h", Port: "2222", Key: "/k", Compress: true}
	got := strings.Join(tg.sshArgs(" -F /cfg\t-oBatchMode=yes ", "/kh", true, "sh -c 'x'"), " ")
	want := "me@h -x -a -F /cfg -oBatchMode=yes -i /k -oUserKnownHostsFile=/kh -C -p 2222 -tt sh -c 'x'"
	if got != want {
		t.Errorf("sshArgs:\n got %s\nwant %s", got, want)
	}
	got = strings.Join((&remoteTarget{Dest: "h"}).sshArgs("", "", false, "true"), " ")
	if got != "h -x -a -T true" {
		t.Errorf("sshArgs: %s", got)
	}
}

func TestKnownHostsLine(t *testing.T) {
	key := base64.StdEncoding.EncodeToString([]byte("ssh-ed25519 AAAAC3Nza root@b\n"))
	for _, c := range []struct{ port, want string }{
		{"", "h ssh-ed25519 AAAAC3Nza root@b\n"},
		{"22", "h ssh-ed25519 AAAAC3Nza root@b\n"},
		{"2222", "[h]:2222 ssh-ed25519 AAAAC3Nza root@b\n"},
	} {
		got, err := (&remoteTarget{Host: "h", Port: c.port, HostKey: key}).knownHostsLine()
		if err != nil || got != c.want {
			t.Errorf("port %q: %q, %v", c.port, got, err)
		}
	}
	if _, err := (&remoteTarget{HostKey: "not base64!"}).knownHostsLine(); err == nil {
		t.Error("a bad host key was accepted")
	}
}

func TestRemoteURI(t *testing.T) {
	cases := []struct{ line, want string }{
		{"ssh://a x86_64-linux", "ssh://a"},
		{"ssh-ng://a x86_64-linux /root/.ssh/id_b - - - - QUFBQQ==", "ssh-ng://a?ssh-key=/root/.ssh/id_b&base64-ssh-public-host-key=QUFBQQ%3D%3D"},
		{"ssh://a?compress=true x86_64-linux /k", "ssh://a?compress=true&ssh-key=/k"},
		{"ssh://a?ssh-key=/mine x86_64-linux /k", "ssh://a?ssh-key=/mine"},
	}
	for _, c := range cases {
		bs, err := wrapper.ParseBuilders(c.line, os.ReadFile)
		if err != nil || len(bs) != 1 {
			t.Fatalf("%q: %v", c.line, err)
		}
		got := remoteURI(bs[0])
		if got != c.want {
			t.Errorf("remoteURI(%q) = %q; want %q", c.line, got, c.want)
		}
		// What nbs prints reaches the same host with the same key.
		tg, err := parseRemote(got)
		want, _ := parseRemote(bs[0].URI)
		if err != nil {
			t.Errorf("%q does not parse: %v", got, err)
			continue
		}
		want.withBuilder(bs[0])
		if tg.Dest != want.Dest || tg.Key != want.Key || tg.HostKey != want.HostKey {
			t.Errorf("%q: %+v, want %+v", got, tg, want)
		}
	}
}

func TestUnameMatches(t *testing.T) {
	cases := []struct {
		uname, goos, goarch string
		want                bool
	}{
		{"Linux x86_64", "linux", "amd64", true},
		{"Linux aarch64", "linux", "arm64", true},
		{"Linux aarch64", "linux", "amd64", false},
		{"Darwin arm64", "linux", "arm64", false},
		{"Darwin arm64", "darwin", "arm64", true},
		{"", "linux", "amd64", false},
		{"Linux x86_64 extra", "linux", "amd64", false},
	}
	for _, c := range cases {
		if got := unameMatches(c.uname, c.goos, c.goarch); got != c.want {
			t.Errorf("unameMatches(%q, %s/%s) = %v", c.uname, c.goos, c.goarch, got)
		}
	}
}

func TestParseProbe(t *testing.T) {
	p := parseProbe("dir=/tmp/nbs-remote.abc\nnbs=/usr/bin/nbs\nuname=Linux x86_64\n")
	if p.dir != "/tmp/nbs-remote.abc" || p.nbs != "/usr/bin/nbs" || p.uname != "Linux x86_64" {
		t.Errorf("%+v", p)
	}
	if p := parseProbe("uname=Linux x86_64\n"); p.dir != "" || p.nbs != "" {
		t.Errorf("%+v", p)
	}
}

// TestRemoteScripts runs the scripts sent to the builder with this
// machine's sh: the probe makes a private directory the sandbox user can
// pass through, the run script records its pid and becomes the command,
// and the cleanup ends only an nbs and removes the directory.
func TestRemoteScripts(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SKIPPED: the cleanup reads /proc")
	}
	tmp := t.TempDir()
	sh := func(script string) string {
		t.Helper()
		cmd := exec.Command("sh", "-c", script)
		cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", script, err, out)
		}
		return string(out)
	}
	p := parseProbe(sh(probeScript))
	if !strings.HasPrefix(p.dir, tmp+"/nbs-remote.") || p.uname == "" {
		t.Fatalf("probe: %+v", p)
	}
	if fi, err := os.Stat(p.dir); err != nil || fi.Mode().Perm() != 0o711 {
		t.Fatalf("probe's directory: %v %v", fi.Mode(), err)
	}

	// copy: the binary arrives on stdin.
	cmd := exec.Command("sh", "-c", copyScript(p.dir))
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("SKIPPED: no sleep")
	}
	in, _ := os.Open(sleep)
	defer in.Close()
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("copy: %v %s", err, out)
	}
	nbs := filepath.Join(p.dir, "nbs")

	// run: the "nbs" (a sleep here) keeps the shell's pid.
	run := exec.Command("sh", "-c", runScript(p.dir, nbs, []string{"60"}))
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { run.Wait(); close(done) }()
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(filepath.Join(p.dir, "pid")); strings.TrimSpace(string(b)) != "" {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	if exe, _ := os.Readlink("/proc/" + strconv.Itoa(run.Process.Pid) + "/exe"); exe != nbs {
		t.Fatalf("run script's process is %s, want %s", exe, nbs)
	}

	// cleanup: the running "nbs" ends, the directory goes.
	sh(cleanupScript(p.dir))
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		run.Process.Kill()
		t.Fatal("cleanup left the remote nbs running")
	}
	if _, err := os.Stat(p.dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s: %v", p.dir, err)
	}

	// A pid that is no nbs (reused) is left alone.
	p = parseProbe(sh(probeScript))
	other := exec.Command(sleep, "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	defer other.Process.Kill()
	os.WriteFile(filepath.Join(p.dir, "pid"), []byte(strconv.Itoa(other.Process.Pid)+"\n"), 0o600)
	sh(cleanupScript(p.dir))
	if err := other.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("cleanup signalled a process that is no nbs: %v", err)
	}
	if _, err := os.Stat(p.dir); !os.IsNotExist(err) {
		t.Errorf("cleanup left %s", p.dir)
	}
}

func TestNixArgs(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	v28 := nix.Version{Major: 2, Minor: 8}
	trusted := &nix.Host{Version: v28, Settings: nix.Settings{"builders": "ssh://conf x86_64-linux /k", "trusted-users": "*", "experimental-features": "nix-command"}}
	untrusted := &nix.Host{Version: v28, Settings: nix.Settings{"builders": "ssh://conf x86_64-linux /k", "trusted-users": "nobody-at-all", "experimental-features": "nix-command"}}
	flakesOn := &nix.Host{Version: v28, Settings: nix.Settings{"experimental-features": "nix-command flakes"}}
	keepConf := "ssh://conf?remote-program=nix-store%20--option%20keep-failed%20true x86_64-linux /k"
	cases := []struct {
		name    string
		program string
		args    []string
		host    *nix.Host
		want    []string
	}{
		{"user's builders", "nix-build", []string{"--builders", "ssh-ng://b x86_64-linux", "f.nix"}, nil,
			[]string{"--keep-failed", "--builders", "ssh-ng://b?remote-program=nix-daemon%20--option%20keep-failed%20true x86_64-linux", "f.nix"}},
		{"configured builders", "nix-build", []string{"f.nix"}, trusted,
			[]string{"--builders", keepConf, "--keep-failed", "f.nix"}},
		{"keep-failed refused", "nix-build", []string{"--no-keep-failed", "--builders", "ssh://b", "f.nix"}, trusted,
			[]string{"--no-keep-failed", "--builders", "ssh://b", "f.nix"}},
		{"flake", "nix", []string{".#x"}, trusted,
			[]string{"build", "--builders", keepConf, "--extra-experimental-features", "nix-command flakes", "--keep-failed", "-L", ".#x"}},
		{"--file", "nix", []string{"--file", "x.nix", "a"}, flakesOn,
			[]string{"build", "--extra-experimental-features", "nix-command", "--keep-failed", "-L", "--file", "x.nix", "a"}},
		{"flakes enabled", "nix", []string{".#x"}, flakesOn,
			[]string{"build", "--extra-experimental-features", "nix-command", "--keep-failed", "-L", ".#x"}},
		{"old nix", "nix", []string{"-f", "x.nix", "a"}, &nix.Host{Version: nix.Version{Major: 2, Minor: 3}},
			[]string{"build", "--keep-failed", "-L", "-f", "x.nix", "a"}},
	}
	if os.Geteuid() != 0 {
		cases = append(cases, struct {
			name    string
			program string
			args    []string
			host    *nix.Host
			want    []string
		}{"untrusted", "nix-build", []string{"f.nix"}, untrusted, []string{"--keep-failed", "f.nix"}})
	}
	for _, c := range cases {
		got, _ := nixArgs(c.program, c.args, c.host, quiet)
		if strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("%s: nixArgs(%q)\n got %q\nwant %q", c.name, c.args, got, c.want)
		}
	}
}

func TestBuilderFor(t *testing.T) {
	bs, _ := wrapper.ParseBuilders("ssh://a x86_64-linux /ka; ssh-ng://b x86_64-linux /kb", os.ReadFile)
	if b := builderFor("ssh-ng://b?remote-program=nix-daemon%20--option%20keep-failed%20true", bs); b.Key() != "/kb" {
		t.Errorf("rewritten URI: %+v", b)
	}
	if b := builderFor("ssh://a", bs); b.Key() != "/ka" {
		t.Errorf("plain URI: %+v", b)
	}
	if b := builderFor("ssh://c", bs); b.URI != "ssh://c" || b.Key() != "" {
		t.Errorf("unknown builder: %+v", b)
	}
}

func FuzzParseRemote(f *testing.F) {
	f.Add("ssh://me@[::1]:22?ssh-key=/k&compress=true")
	f.Add("ssh-ng://h?base64-ssh-public-host-key=QUFBQQ%3D%3D")
	f.Add("nix-docker")
	f.Fuzz(func(t *testing.T, uri string) {
		tg, err := parseRemote(uri)
		if err != nil {
			return
		}
		if tg.Host == "" || strings.HasPrefix(tg.Dest, "-") || strings.HasPrefix(tg.Key, "-") || strings.Trim(tg.Port, "0123456789") != "" {
			t.Fatalf("parseRemote(%q) = %+v", uri, tg)
		}
		args := tg.sshArgs("", "", false, "true")
		if args[0] != tg.Dest {
			t.Fatalf("destination %q is not first: %q", tg.Dest, args)
		}
	})
}

// TestEnterFailedRemoteUnknownBuilder: a builder URI that only the log
// names (a build can print any line) is never connected to.
func TestEnterFailedRemoteUnknownBuilder(t *testing.T) {
	f := &Factory{}
	bs := []wrapper.Builder{{URI: "ssh://known"}}
	_, err := enterFailedRemote(context.Background(), f, wrapper.Failure{Drv: "/nix/store/x-evil.drv", KeptDir: "/tmp/d", Builder: "ssh://evil?base64-ssh-public-host-key=AAAA"}, bs, "")
	var he *hintError
	if !errors.As(err, &he) || !strings.Contains(err.Error(), "not one of this build's builders") {
		t.Errorf("err = %v; want a refusal to connect", err)
	}
}
