//go:build linux

package main

import (
	"os"
	"strings"
	"testing"
)

// TestShellFixedOutput: a fixed-output derivation's kept directory gets
// the host's network and Nix's /etc for such builds.
func TestShellFixedOutput(t *testing.T) {
	requireUserNS(t)
	dir := buildFailure(t, "fod")
	hostNet, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	res := runNBS(t, nil, nil, "shell", dir, "sh", "-c", "readlink /proc/self/ns/net; cat /etc/nsswitch.conf; ls /etc")
	want := hostNet + "\nhosts: files dns\nservices: files\n"
	if res.code != 0 || !strings.HasPrefix(res.stdout, want) || !strings.Contains(res.stdout, "nsswitch.conf\npasswd\n") {
		t.Errorf("status %d, stdout %q; want the host's network namespace and Nix's FOD /etc\nstderr: %s", res.code, res.stdout, res.stderr)
	}
}

// TestBuildStructuredAttrs: a structured-attrs build is entered with
// .attrs.sh sourced before env-vars, so its arrays are there.
func TestBuildStructuredAttrs(t *testing.T) {
	requireNix(t)
	requireUserNS(t)
	res, _ := runBuild(t, nil, "--run", `echo "${flags[1]} ${env[PATH]##*-}"; id -u`, e2eNix(t), "-A", "structured", "--argstr", "nonce", nonce(t))
	cleanupKept(t, res.stderr)
	if res.code != 0 || res.stdout != "second tools/bin\n1000\n" {
		t.Errorf("status %d, stdout %q\nstderr: %s", res.code, res.stdout, res.stderr)
	}
}
