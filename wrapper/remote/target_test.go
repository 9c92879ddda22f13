package remote

import (
	"encoding/base64"
	"os"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/wrapper"
)

func TestParse(t *testing.T) {
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
		got, err := Parse(c.uri)
		if c.shouldFail {
			if err == nil {
				t.Errorf("Parse(%q) = %+v; want an error", c.uri, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("Parse(%q): %v", c.uri, err)
			continue
		}
		if got.Scheme != c.scheme || got.Dest != c.dest || got.Host != c.host || got.Port != c.port ||
			got.Key != c.key || got.HostKey != c.hostKey || got.Compress != c.compress {
			t.Errorf("Parse(%q) = %+v", c.uri, got)
		}
	}
}

func TestSSHArgs(t *testing.T) {
	tg := &Target{Dest: "me@h", Host: "h", Port: "2222", Key: "/k", Compress: true}
	got := strings.Join(tg.sshArgs(" -F /cfg\t-oBatchMode=yes ", "/kh", true, "sh -c 'x'"), " ")
	want := "me@h -x -a -F /cfg -oBatchMode=yes -i /k -oUserKnownHostsFile=/kh -C -p 2222 -tt sh -c 'x'"
	if got != want {
		t.Errorf("sshArgs:\n got %s\nwant %s", got, want)
	}
	got = strings.Join((&Target{Dest: "h"}).sshArgs("", "", false, "true"), " ")
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
		got, err := (&Target{Host: "h", Port: c.port, HostKey: key}).knownHostsLine()
		if err != nil || got != c.want {
			t.Errorf("port %q: %q, %v", c.port, got, err)
		}
	}
	if _, err := (&Target{HostKey: "not base64!"}).knownHostsLine(); err == nil {
		t.Error("a bad host key was accepted")
	}
}

func TestURI(t *testing.T) {
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
		got := URI(bs[0])
		if got != c.want {
			t.Errorf("URI(%q) = %q; want %q", c.line, got, c.want)
		}
		// What nbs prints reaches the same host with the same key.
		tg, err := Parse(got)
		want, _ := Parse(bs[0].URI)
		if err != nil {
			t.Errorf("%q does not parse: %v", got, err)
			continue
		}
		want.WithBuilder(bs[0])
		if tg.Dest != want.Dest || tg.Key != want.Key || tg.HostKey != want.HostKey {
			t.Errorf("%q: %+v, want %+v", got, tg, want)
		}
	}
}

// TestCompleteFrom: a URI without key or host key gets them from the
// configured builder on the same host and port, and keeps its own.
func TestCompleteFrom(t *testing.T) {
	bs, err := wrapper.ParseBuilders("ssh://me@h:2222 x86_64-linux /k2222 - - - - QUFBQQ==; ssh://me@h x86_64-linux /k22", os.ReadFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ uri, key, hostKey string }{
		{"ssh://me@h", "/k22", ""},
		{"ssh-ng://me@h:2222", "/k2222", "QUFBQQ=="},
		{"ssh://me@h:2222?ssh-key=/mine", "/mine", "QUFBQQ=="},
		{"ssh://other@h", "", ""},
	} {
		tg, err := Parse(c.uri)
		if err != nil {
			t.Fatal(err)
		}
		tg.completeFrom(bs)
		if tg.Key != c.key || tg.HostKey != c.hostKey {
			t.Errorf("%s: key %q, host key %q; want %q, %q", c.uri, tg.Key, tg.HostKey, c.key, c.hostKey)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("ssh://me@[::1]:22?ssh-key=/k&compress=true")
	f.Add("ssh-ng://h?base64-ssh-public-host-key=QUFBQQ%3D%3D")
	f.Add("nix-docker")
	f.Fuzz(func(t *testing.T, uri string) {
		tg, err := Parse(uri)
		if err != nil {
			return
		}
		if tg.Host == "" || strings.HasPrefix(tg.Dest, "-") || strings.HasPrefix(tg.Key, "-") || strings.Trim(tg.Port, "0123456789") != "" {
			t.Fatalf("Parse(%q) = %+v", uri, tg)
		}
		args := tg.sshArgs("", "", false, "true")
		if args[0] != tg.Dest {
			t.Fatalf("destination %q is not first: %q", tg.Dest, args)
		}
	})
}
