//go:build linux

package main

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/sandbox/shquote"
)

// End-to-end tests of stdenv builds (issue 13), with testdata/stdenv, a
// stand-in for nixpkgs' stdenv that behaves like the real one where nbs
// depends on it: env-vars written 0600 at every phase start, setup hooks
// that extend PATH and flags, an EXIT trap, structured attrs. The widget
// builds fail in buildPhase with status 7 after preConfigure put the
// source's tools/ first in PATH; buildPhase records its environment in
// /build/buildphase-env first, so a re-run of the phase in nbs can be
// compared with the build's own.

// rerun runs the failing phase again and checks it in one go: its
// environment against the build's, its status, and that nothing after
// it ran ($out is never made).
const rerun = `cp /build/buildphase-env /build/orig; runPhase buildPhase; echo "status=$?"; ` +
	`diff /build/orig /build/buildphase-env && echo same-env; test -e "$out" || echo no-out; pwd`

const widgetError = "widget-gen: main.w: line 2: unknown widget knob"

// What testdata/stdenv/setup.sh says when a derivation has structured
// attrs, and when unpackPhase finds the source's directory there
// already (genericBuild run again in the kept /build).
const (
	setupAttrsNote   = "setup: the derivation has structured attrs"
	setupUnpackAgain = "setup: widget-src is there already"
)

// TestStdenvRun: nbs build --run has the interactive shell's stdenv and
// directory: runPhase buildPhase fails as in the build, in the build's
// environment, and runs nothing after it; plain and structured attrs,
// as root (env-vars 0600) and as an ordinary user (env-vars 0644).
func TestStdenvRun(t *testing.T) {
	requireUserNS(t)
	var user *testUser
	if u := unprivilegedOrNil(t); u != nil {
		user = u
	}
	cases := []struct {
		name, attr string
		u          *testUser
	}{
		{"root", "stdenv", nil},
		{"root structured", "stdenvStructured", nil},
		{"user", "stdenvReadable", user},
		{"user structured", "stdenvStructuredReadable", user},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if strings.HasPrefix(c.name, "user") && c.u == nil {
				missing(t, "no unprivileged test user")
			}
			res, _ := runBuild(t, c.u, "--run", rerun, e2eNix(t), "-A", c.attr, "--argstr", "nonce", nonce(t))
			cleanupKept(t, res.stderr)
			want := "Running phase: buildPhase\nbuilding widgets in /build/widget-src\nstatus=7\nsame-env\nno-out\n/build/widget-src\n"
			if res.code != 0 || res.stdout != want {
				t.Errorf("status %d, stdout %q, want %q\nstderr: %s", res.code, res.stdout, want, res.stderr)
			}
			// The re-run's error, after nbs entered the sandbox.
			if _, after, ok := strings.Cut(res.stderr, "entering its sandbox"); !ok || strings.Count(after, widgetError) != 1 {
				t.Errorf("the re-run does not fail with the build's error once:\n%s", res.stderr)
			}
			if strings.Contains(res.stdout+res.stderr, setupAttrsNote+"\n"+setupAttrsNote) {
				t.Errorf("setup's output shown twice")
			}
		})
	}
}

func unprivilegedOrNil(t *testing.T) *testUser {
	t.Helper()
	if testing.Short() {
		return nil
	}
	return unprivileged(t)
}

// TestStdenvInteractive: through a terminal, under sudo, as root and as
// an ordinary user: the hint names the failed phase and the commands;
// leaving at once changes nothing; runPhase buildPhase fails with the
// build's text and status in the build's environment; resumeBuild stops
// at the same failure; genericBuild starts over from /build.
func TestStdenvInteractive(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)
	sudo := []string{"SUDO_UID=" + strconv.Itoa(u.uid), "SUDO_GID=" + strconv.Itoa(u.gid), "SUDO_USER=" + u.name}
	cases := []struct {
		name, attr, drvName string
		env                 []string
		as                  *testUser
	}{
		{"sudo", "stdenv", "nbs-e2e-widget", sudo, nil},
		{"sudo structured", "stdenvStructured", "nbs-e2e-widget-structured", sudo, nil},
		{"root structured", "stdenvStructured", "nbs-e2e-widget-structured", nil, nil},
		{"user", "stdenvReadable", "nbs-e2e-widget", nil, u},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := buildFailure(t, c.attr)
			start := func() (*term, <-chan int) {
				tm := newTerm(t)
				env := append([]string{"TMPDIR=" + privateTmp(t)}, c.env...)
				_, done := onTermAs(t, tm, c.as, env, "shell", dir)
				tm.expect(t, "nbs: stdenv is loaded, with the environment the failed phase began with")
				tm.expect(t, "nbs: the build failed in buildPhase; its phases: unpackPhase patchPhase configurePhase buildPhase checkPhase installPhase fixupPhase installCheckPhase distPhase")
				tm.expect(t, "nbs:   runPhase buildPhase    runs that phase again as the builder did")
				tm.expect(t, "nbs:   resumeBuild            runs buildPhase and every phase after it")
				tm.expect(t, "nbs:   genericBuild           runs the whole build again from /build")
				tm.expect(t, "[nbs "+c.drvName+"] /build/widget-src $ ")
				return tm, done
			}
			// In and out at once: the copy is the kept directory.
			tm, done := start()
			tm.send("exit\r")
			exitWithin(t, done, 0)
			tm.mu.Lock()
			if strings.Contains(tm.out.String(), "changed") {
				t.Errorf("entering and leaving changed /build:\n%s", tm.out.String())
			}
			tm.mu.Unlock()

			tm, done = start()
			tm.send(rerun + "\r")
			tm.expect(t, widgetError)
			tm.expect(t, "status=7")
			tm.expect(t, "same-env")
			tm.expect(t, "no-out")
			tm.send("resumeBuild; echo resume=$?; test -e \"$out\" || echo still-no-out\r")
			tm.expect(t, "Running phase: buildPhase")
			tm.expect(t, "resume=7")
			tm.expect(t, "still-no-out")
			tm.send("genericBuild; echo generic=$?; pwd\r")
			tm.expect(t, "Running phase: unpackPhase")
			tm.expect(t, setupUnpackAgain)
			tm.expect(t, "generic=1")
			tm.expect(t, "/build/widget-src")
			tm.send("exit 0\r")
			exitWithin(t, done, 0)
			tm.mu.Lock()
			defer tm.mu.Unlock()
			if strings.Contains(tm.out.String(), "Running phase: installPhase") {
				t.Errorf("a phase after the failing one ran:\n%s", tm.out.String())
			}
		})
	}
}

// onTermAs is onTerm as user u (nil: as the test process).
func onTermAs(t *testing.T, tm *term, u *testUser, env []string, args ...string) (*exec.Cmd, <-chan int) {
	t.Helper()
	argv, home := append([]string{nbsBin}, args...), "/nonexistent"
	if u != nil {
		argv = append([]string{"setpriv", "--reuid=" + strconv.Itoa(u.uid), "--regid=" + strconv.Itoa(u.gid), "--init-groups", "--"}, argv...)
		home = u.home
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append([]string{"PATH=/usr/bin:/bin", "TERM=xterm", "NO_COLOR=1", "HOME=" + home}, entryEnv()...), env...)
	done := tm.start(t, cmd)
	t.Cleanup(func() { cmd.Process.Kill() })
	return cmd, done
}

// TestStdenvUnreadable: an ordinary user's nbs build cannot read the
// 0600 env-vars: it does not claim to enter, and its hint keeps the
// --run command; that command under sudo does what --run would have.
func TestStdenvUnreadable(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)
	res, _ := runBuild(t, u, "--run", rerun, e2eNix(t), "-A", "stdenv", "--argstr", "nonce", nonce(t))
	cleanupKept(t, res.stderr)
	dirs := keptDirsIn(res.stderr)
	if len(dirs) != 1 {
		t.Fatalf("kept directories %q\nstderr: %s", dirs, res.stderr)
	}
	hint := "sudo nbs shell --run " + shquote.Paste(rerun) + " " + shquote.Paste(dirs[0])
	if res.code == 0 || strings.Contains(res.stderr, "entering its sandbox") || !strings.Contains(res.stderr, hint) {
		t.Errorf("status %d; want no \"entering\" and the hint %q in:\n%s", res.code, hint, res.stderr)
	}
	sudo := []string{"SUDO_UID=" + strconv.Itoa(u.uid), "SUDO_GID=" + strconv.Itoa(u.gid)}
	res = runNBS(t, nil, sudo, "shell", "--run", rerun, dirs[0])
	want := "Running phase: buildPhase\nbuilding widgets in /build/widget-src\nstatus=7\nsame-env\nno-out\n/build/widget-src\n"
	if res.code != 0 || res.stdout != want || !strings.Contains(res.stderr, widgetError) {
		t.Errorf("under sudo: status %d, stdout %q, want %q\nstderr: %s", res.code, res.stdout, want, res.stderr)
	}
	assertCleanTmp(t, res)
}
