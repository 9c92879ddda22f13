//go:build linux

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/nix"
)

// unsandboxedScript prints, at the replay's stop, what tells a build
// without Nix's sandbox: the live state, the build directory's path
// (three times: NIX_BUILD_TOP, TMPDIR, and PWD below it), the host's
// file system and name, the uid, and that $out can be created.
const unsandboxedScript = `echo "[$phaseLocal] $NIX_BUILD_TOP $TMPDIR $PWD $curPhase"; test -d /usr && echo host-fs; hostname; id -u; ` +
	`mkdir "$out" && echo made > "$out/f" && cat "$out/f"`

// checkUnsandboxedReplay checks what unsandboxedScript printed.
func checkUnsandboxedReplay(t *testing.T, r result, out string, uidOK func(int) bool) {
	t.Helper()
	host, _ := os.Hostname()
	// The build's own output first.
	_, rest, _ := strings.Cut(r.stdout, "Running phase: buildPhase\n")
	lines := strings.Split(rest, "\n")
	m := regexp.MustCompile(`^\[not-exported\] (/\S+) (\S+) (\S+) buildPhase$`).FindStringSubmatch(lines[0])
	if r.code != 0 || m == nil || len(lines) != 6 {
		t.Fatalf("status %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	top := m[1]
	if top == "/build" || m[2] != top || m[3] != top+"/src/deep" || !strings.HasPrefix(top, r.tmp+"/") {
		t.Errorf("build directory %s, TMPDIR %s, PWD %s; want a fresh host directory in TMPDIR %s", top, m[2], m[3], r.tmp)
	}
	uid, _ := strconv.Atoi(lines[3])
	if lines[1] != "host-fs" || lines[2] != host || !uidOK(uid) || lines[4] != "made" {
		t.Errorf("stdout %q: want the host's file system and name, the build's uid, $out made", r.stdout)
	}
	if !strings.Contains(r.stderr, "the original build ran without Nix's sandbox") {
		t.Errorf("no word that the replay ran as the original, without the sandbox:\n%s", r.stderr)
	}
	if _, err := os.Lstat(out); !os.IsNotExist(err) {
		t.Errorf("the replay created %s in the host's store: %v", out, err)
	}
	assertCleanTmp(t, r)
}

// TestReplayUnsandboxed: a build that failed with sandbox = false is
// replayed as it ran: on the host, its build directory a fresh one at a
// host path, its outputs in a private view of /nix/store (never the
// host's store), stopping in the failing shell's live state. nbs tells
// from --no-sandbox and from nbs build's --option sandbox false, never
// from the kept env-vars (which the build wrote).
func TestReplayUnsandboxed(t *testing.T) {
	requireRoot(t)
	drv, kept, _ := nixBuildReplay(t, "stdenv", true, "--option", "sandbox", "false")
	d, err := nix.ReadDerivation(drv)
	if err != nil {
		t.Fatal(err)
	}
	out := d.Outputs[0].Path
	for _, r := range runners(t) {
		t.Run(r.name, func(t *testing.T) {
			uidOK := func(uid int) bool {
				return (r.hostUID >= 0 && uid == r.hostUID) || (r.hostUID < 0 && r.buildUsers[uid])
			}
			var args [][]string
			if r.user != nil {
				// env-vars is the build user's: nbs is told.
				args = [][]string{{"--no-sandbox", drv}}
				// Up to 2.30.3 the directory's name names the .drv.
				if b, ok := nix.ParseBuildDir(kept); ok && b.Name != "" {
					args = append(args, []string{"--no-sandbox", kept})
				}
			} else {
				// Root reads env-vars, whose NIX_BUILD_TOP is the
				// host's; but the build wrote it, so it is no proof:
				// without --no-sandbox the replay stays in the sandbox
				// and says why.
				res := runNBS(t, r.user, r.env, "replay", "--run", "hostname", kept)
				if res.code != 0 || !strings.HasSuffix(res.stdout, "\nlocalhost\n") ||
					!strings.Contains(res.stderr, "but Nix's sandbox setting says the build ran in the sandbox") {
					t.Errorf("replay of a kept dir whose env-vars names the host: status %d, stdout %q, want localhost; stderr:\n%s", res.code, res.stdout, res.stderr)
				}
				args = [][]string{{"--no-sandbox", kept}}
			}
			for _, a := range args {
				res := runNBS(t, r.user, r.env, append([]string{"replay", "--run", unsandboxedScript}, a...)...)
				checkUnsandboxedReplay(t, res, out, uidOK)
			}
		})
	}

	t.Run("private", func(t *testing.T) {
		// The build ran as a build user, who could not read the
		// caller's home: the replay, which runs as the caller, sees it
		// empty (and the caller's /run/user/UID, were there one).
		u := unprivileged(t)
		secret := filepath.Join(u.home, ".nbs-replay-secret")
		if err := os.WriteFile(secret, []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Lchown(secret, u.uid, u.gid)
		t.Cleanup(func() { os.Remove(secret) })
		res := runNBS(t, u, nil, "replay", "--no-sandbox", "--run",
			"cat "+secret+" 2>/dev/null || echo hidden; ls -A "+u.home+" | wc -l; test -d /usr && echo host-fs", drv)
		if res.code != 0 || !strings.HasSuffix(res.stdout, "\nhidden\n0\nhost-fs\n") {
			t.Errorf("status %d, stdout %q; want the home hidden, the host's file system\nstderr: %s", res.code, res.stdout, res.stderr)
		}
		if b, err := os.ReadFile(secret); err != nil || string(b) != "secret\n" {
			t.Errorf("the secret on the host: %q, %v", b, err)
		}
		assertCleanTmp(t, res)
	})

	t.Run("not bash", func(t *testing.T) {
		// A second sandbox over the same store overlay enters the
		// replayed build directory.
		bb, _, _ := nixBuildReplay(t, "busybox", true, "--option", "sandbox", "false")
		res := runNBS(t, unprivileged(t), nil, "replay", "--no-sandbox", bb, "sh", "-c", `cat left-behind.txt; echo "$PWD $NIX_BUILD_TOP"; test -w /nix/store && echo store-writable`)
		lines := strings.Split(res.stdout, "\n")
		if res.code != 0 || len(lines) != 4 || lines[0] != "left" || lines[2] != "store-writable" ||
			!regexp.MustCompile(`^(/\S+/build) (/\S+/build)$`).MatchString(lines[1]) || strings.HasPrefix(lines[1], "/build ") {
			t.Errorf("status %d, stdout %q; stderr:\n%s", res.code, res.stdout, res.stderr)
		}
		assertCleanTmp(t, res)
	})

	t.Run("build", func(t *testing.T) {
		nonce := fmt.Sprintf("%s-%d", t.Name(), time.Now().UnixNano())
		res := runNBS(t, nil, nil, "build", "--replay", "--run", unsandboxedScript,
			"--option", "sandbox", "false", replayNix(t), "-A", "stdenv", "--argstr", "nonce", nonce)
		cleanupKept(t, res.stderr)
		m := regexp.MustCompile(`(/nix/store/\S+-nbs-replay-stdenv-fail)\b`).FindStringSubmatch(res.stdout + res.stderr)
		if m == nil {
			t.Fatalf("no output path in:\n%s", res.stderr)
		}
		// nix-build as root builds in-process and keeps its directory
		// in nbs's TMPDIR: the rest must be clean.
		for _, e := range tmpEntries(res.tmp) {
			if strings.HasPrefix(e, "nix-build-") {
				os.RemoveAll(filepath.Join(res.tmp, e))
			}
		}
		checkUnsandboxedReplay(t, res, m[1], func(int) bool { return true })
	})

	t.Run("no namespaces", func(t *testing.T) {
		res := runNBSUnder(t, []string{restrictBin(t)}, nil, nil, "replay", "--no-sandbox", "--run", "true", drv)
		// One line: no word on how the replay would have run first.
		if res.code == 0 || strings.Count(res.stderr, "\n") != 1 ||
			!strings.Contains(res.stderr, "a replay runs the build again in a sandbox of its own, which needs user and mount namespaces") ||
			!strings.Contains(res.stderr, "seccomp") {
			t.Errorf("status %d, stderr:\n%s\nwant one line saying that a replay needs namespaces, and why they are refused", res.code, res.stderr)
		}
		assertCleanTmp(t, res)
	})
}

// TestReplayUnsandboxedInteractive: the shell at the stop of a
// sandbox = false replay has the terminal (the host's devpts).
func TestReplayUnsandboxedInteractive(t *testing.T) {
	requireRoot(t)
	requireUserNS(t)
	drv, _, _ := nixBuildReplay(t, "stdenv", true, "--option", "sandbox", "false")
	tm := newTerm(t)
	_, done := onTerm(t, tm, []string{"TMPDIR=" + privateTmp(t)}, "replay", "--no-sandbox", drv)
	tm.expect(t, "nbs: the replay failed in buildPhase (exit 1) at: false")
	tm.expect(t, "/src/deep $ ")
	tm.send(`echo "<$phaseLocal $curPhase>"; test -t 0 && test -t 1 && echo on-a-tty` + "\r")
	tm.expect(t, "<not-exported buildPhase>")
	tm.expect(t, "on-a-tty")
	tm.send("exit 3\r")
	exitWithin(t, done, 3)
}
