//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"golang.org/x/sys/unix"
)

// The replay tests build testdata/replay with real nix-build and replay
// the failures with nbs, unprivileged.

func replayNix(t *testing.T) string {
	p, err := filepath.Abs("../../testdata/replay")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var failedDrvRE = regexp.MustCompile(`(?:builder for|Cannot build) ['"](/nix/store/[^'"]+\.drv)['"]`)

// nixBuildReplay builds attr of testdata/replay with a fresh nonce (and
// the nix-build arguments extra, such as --argstr delay 2). When
// fail, it must fail; it returns the derivation, the kept directory ("")
// and how long nix-build took.
func nixBuildReplay(t *testing.T, attr string, fail bool, extra ...string) (drv, kept string, took time.Duration) {
	t.Helper()
	requireNix(t)
	nonce := fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), nonceCounter.Add(1))
	which := append([]string{replayNix(t), "-A", attr, "--argstr", "nonce", nonce}, extra...)
	args := append([]string{"--no-out-link"}, which...)
	if fail {
		args = append(args, "--keep-failed")
	}
	inst, err := exec.Command("nix-instantiate", which...).Output()
	if err != nil {
		t.Fatalf("nix-instantiate -A %s: %v", attr, err)
	}
	drv = strings.TrimSpace(string(inst))
	cmd := exec.Command("nix-build", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err = cmd.Run()
	took = time.Since(start)
	if fail != (err != nil) {
		t.Fatalf("nix-build -A %s: %v (want failure: %v):\n%s", attr, err, fail, stderr.String())
	}
	if !fail {
		return drv, "", took
	}
	if m := failedDrvRE.FindStringSubmatch(stderr.String()); m == nil || m[1] != drv {
		t.Fatalf("nix-build -A %s: no failure of %s in its log:\n%s", attr, drv, stderr.String())
	}
	if m := keptRE.FindStringSubmatch(stderr.String()); m != nil {
		kept = m[1]
		t.Cleanup(func() {
			if os.Geteuid() == 0 {
				removeKept(kept)
			}
		})
	}
	return drv, kept, took
}

// TestReplayStdenv: the stdenv-like build whose env-vars is 0600 (nbs
// shell needs sudo for it), replayed by an unprivileged user from the
// kept directory: --run sees the failing phase's non-exported variable,
// its function, its late export and its directory; errexit is still on.
func TestReplayStdenv(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)
	// The build takes two seconds or more, which the offer tells.
	drv, kept, took := nixBuildReplay(t, "stdenv", true, "--argstr", "delay", "2")
	if kept == "" {
		t.Fatal("nix-build kept no directory")
	}
	// Up to Nix 2.30.3 the kept directory's name carries the
	// derivation's; nix-PID-N (2.30.4+) does not, and with env-vars
	// unreadable only the .drv says which build it was.
	targets, offer := []string{kept, drv}, "nbs replay "+kept
	if b, ok := nix.ParseBuildDir(kept); ok && b.Name == "" {
		targets, offer = []string{drv}, "nbs replay DRV true, DRV being the .drv nix-build's error names"
		if r := runNBS(t, u, nil, "replay", "--run", "true", kept); r.code == 0 || !strings.Contains(r.stderr, "give the .drv") {
			t.Errorf("replay of a nameless kept directory: status %d, stderr %q; want a line asking for the .drv", r.code, r.stderr)
		}
	}
	if r := runNBS(t, u, nil, "shell", kept, "true"); r.code == 0 || !strings.Contains(r.stderr, "0600") {
		t.Fatalf("nbs shell on the 0600 env-vars: status %d, stderr %q; the test relies on it being unreadable", r.code, r.stderr)
	} else if m := regexp.MustCompile(`without sudo, run the build again as you and stop at its failure \(the original ran ((\d+)s)\): ` + regexp.QuoteMeta(offer)).FindStringSubmatch(r.stderr); m == nil {
		t.Errorf("nbs shell on the 0600 env-vars does not offer nbs replay with the original's time: %q", r.stderr)
	} else if n, _ := strconv.Atoi(m[2]); n < 2 || time.Duration(n)*time.Second > took+time.Second {
		// The build ran inside nix-build's time.
		t.Errorf("the original ran %s, longer than nix-build's %v", m[1], took)
	}
	script := `echo "[$phaseLocal] [$LATE_EXPORT] [$EARLY_EXPORT] [$configureLocal] $PWD $curPhase"; phaseFn; [[ $- == *e* ]] && echo errexit-on; shopt -q nullglob && echo nullglob-on; trap -p EXIT; exit 42`
	for _, target := range targets {
		r := runNBS(t, u, nil, "replay", "--run", script, target)
		for _, want := range []string{"[not-exported] [late] [configured] [c] /build/src/deep buildPhase", "phaseFn here", "errexit-on", "nullglob-on", "trap -- 'exitHandler' EXIT"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("replay %s: stdout lacks %q:\n%s\nstderr:\n%s", target, want, r.stdout, r.stderr)
			}
		}
		if strings.Contains(r.stdout, "not reached") || strings.Contains(r.stderr, "stdenv: build failed") {
			t.Errorf("replay %s: the build went on after the stop:\n%s\n%s", target, r.stdout, r.stderr)
		}
		if r.code != 42 {
			t.Errorf("replay %s: status %d, want the command's 42; stderr:\n%s", target, r.code, r.stderr)
		}
		for _, want := range []string{
			"nbs: replaying nbs-replay-stdenv-fail (the original failed in buildPhase) in a new sandbox (" + drv + ")",
			"nbs: the replay failed in buildPhase (exit 1) at: false",
		} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("replay %s: stderr lacks %q:\n%s", target, want, r.stderr)
			}
		}
		assertCleanTmp(t, r)
	}

	// The command form: CMD ARG… evaluated in the stopped shell.
	r := runNBS(t, u, nil, "replay", drv, "declare", "-p", "phaseLocal")
	// The build's own output comes first, on stdout and stderr as the
	// builder wrote it.
	if r.code != 0 || !strings.HasSuffix(r.stdout, "Running phase: buildPhase\n"+`declare -- phaseLocal="not-exported"`+"\n") {
		t.Errorf("replay DRV declare -p phaseLocal: status %d, stdout %q, stderr %s", r.code, r.stdout, r.stderr)
	}
	assertCleanTmp(t, r)
}

// TestReplayBreak: --break buildPhase stops before it, with the earlier
// phase done and nothing of the failing one.
func TestReplayBreak(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)
	drv, _, _ := nixBuildReplay(t, "stdenv", true)
	r := runNBS(t, u, nil, "replay", "--break", "buildPhase", "--run",
		`echo "[${EARLY_EXPORT-}] [${configureLocal-}] [${LATE_EXPORT-}] [${phaseLocal-}] $PWD"; declare -F phaseFn || echo no-phaseFn; declare -f runPhase | grep -c __nbs`, drv)
	if !strings.Contains(r.stdout, "[configured] [c] [] [] /build\nno-phaseFn\n0\n") {
		t.Errorf("--break buildPhase: stdout:\n%s\nstderr:\n%s", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "nbs: stopped before buildPhase (--break)") || strings.Contains(r.stderr, "nbs-replay: buildPhase fails") {
		t.Errorf("--break buildPhase: stderr:\n%s", r.stderr)
	}
	assertCleanTmp(t, r)

	r = runNBS(t, u, nil, "replay", "--break", "noSuchPhase", drv, "true")
	if r.code != 0 || !strings.Contains(r.stderr, "nbs: --break noSuchPhase: the build failed before it reached that phase") {
		t.Errorf("--break noSuchPhase: status %d, stderr:\n%s", r.code, r.stderr)
	}
	assertCleanTmp(t, r)
}

// TestReplayNotStdenv: a bash builder without stdenv stops at its exit
// (no errexit) in its state; a builder that is not bash leaves its
// /build to a shell; a build that succeeds says so.
func TestReplayNotStdenv(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)

	drv, _, _ := nixBuildReplay(t, "plainBash", true)
	r := runNBS(t, u, nil, "replay", "--run", `echo "[$plainVar] $PWD"; cat "$textPath"; echo; ls -A /build`, drv)
	want := "passed as a file[set] /tmp\npassed as a file\n.attr-1lf969yddshzhld7sr1vbagr07bnygg99lgl6gk5kxcnp4z9wbcq\n"
	if r.code != 0 || r.stdout != want || !strings.Contains(r.stderr, "nbs: the replay failed: the builder exited with status 6") {
		t.Errorf("plain bash: status %d, stdout %q, want %q; stderr:\n%s", r.code, r.stdout, want, r.stderr)
	}
	assertCleanTmp(t, r)

	drv, _, _ = nixBuildReplay(t, "busybox", true)
	r = runNBS(t, u, nil, "replay", drv, "sh", "-c", `cat left-behind.txt; echo "$PWD $HOME $NIX_BUILD_TOP"; exit 3`)
	if r.code != 3 || r.stdout != "left\n/build /homeless-shelter /build\n" ||
		!strings.Contains(r.stderr, "nbs: the replayed builder failed (builder exit 7) without stopping in a shell of its own; entering its /build as the failure left it") {
		t.Errorf("busybox: status %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	assertCleanTmp(t, r)

	drv, _, _ = nixBuildReplay(t, "stdenvOk", false)
	r = runNBS(t, u, nil, "replay", drv, "echo", "never")
	if r.code != 0 || strings.Contains(r.stdout, "never") || !strings.Contains(r.stderr, "nbs: the replay of nbs-replay-stdenv-ok succeeded") {
		t.Errorf("a build that succeeds: status %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	assertCleanTmp(t, r)
}

// TestReplayPositional: $0, $# and $@ at the stop are the failing
// function's (or, at the top level, the builder script's), in --run's
// script and in the interactive shell.
func TestReplayPositional(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)
	show := `echo "<${0#*-} $# [$1] [$2]>"`
	for _, c := range []struct{ attr, want string }{
		{"fnArgs", "<args.sh 2 [two three] [one x]>"},
		{"topArgs", "<args.sh 2 [top] [level args]>"},
	} {
		drv, _, _ := nixBuildReplay(t, c.attr, true)
		r := runNBS(t, u, nil, "replay", "--run", show, drv)
		if r.code != 0 || r.stdout != c.want+"\n" {
			t.Errorf("%s: status %d, stdout %q, want %q; stderr:\n%s", c.attr, r.code, r.stdout, c.want, r.stderr)
		}
		assertCleanTmp(t, r)
		if c.attr != "fnArgs" {
			continue
		}
		tm := newTerm(t)
		_, done := onTerm(t, tm, []string{"TMPDIR=" + privateTmp(t)}, "replay", drv)
		tm.expect(t, "[nbs replay nbs-replay-fn-args] /build $ ")
		tm.send(show + "; exit 4\r")
		tm.expect(t, c.want)
		select {
		case code := <-done:
			if code != 4 {
				t.Errorf("nbs exited %d, want the shell's 4", code)
			}
		case <-time.After(hang):
			t.Fatal("nbs did not exit")
		}
	}
}

// TestReplayInteractive: at the stop, an interactive shell on the
// terminal with the stopped shell's state, and nbs exits with its
// status.
func TestReplayInteractive(t *testing.T) {
	requireUserNS(t)
	drv, _, _ := nixBuildReplay(t, "stdenv", true)
	tm := newTerm(t)
	_, done := onTerm(t, tm, []string{"TMPDIR=" + privateTmp(t)}, "replay", drv)
	tm.expect(t, "nbs: the replay failed in buildPhase (exit 1) at: false")
	tm.expect(t, "[nbs replay nbs-replay-stdenv-fail] /build/src/deep $ ")
	tm.send(`echo "<$phaseLocal $LATE_EXPORT $curPhase $# $1 ${0#*-}>"; phaseFn; trap -p EXIT; tty` + "\r")
	tm.expect(t, "<not-exported late buildPhase 1 buildPhase default-builder.sh>")
	tm.expect(t, "phaseFn here")
	tm.expect(t, "trap -- 'exitHandler' EXIT")
	tm.expect(t, "/dev/pts/0")
	tm.send("false; echo still-here\r")
	tm.expect(t, "still-here")
	tm.send("exit 5\r")
	select {
	case code := <-done:
		if code != 5 {
			t.Errorf("nbs exited %d, want the shell's 5", code)
		}
	case <-time.After(hang):
		t.Fatal("nbs did not exit")
	}
}

// TestReplayBadInput: one line, a non-zero status, nothing left behind.
func TestReplayBadInput(t *testing.T) {
	requireNix(t)
	notDrv := filepath.Join(t.TempDir(), "x.drv")
	os.WriteFile(notDrv, []byte("not a derivation"), 0o644)
	drv, _, _ := nixBuildReplay(t, "stdenvOk", false)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"replay"}, "missing TARGET"},
		{[]string{"replay", "/nonexistent.drv"}, "/nonexistent.drv"},
		{[]string{"replay", notDrv}, "not a derivation"},
		{[]string{"replay", t.TempDir()}, "kept"},
		{[]string{"replay", drv}, "no terminal for an interactive shell"},
		{[]string{"replay", "--run", "x", drv, "y"}, "not both"},
		{[]string{"replay", "--no-sandbox", "--remote", "ssh://builder", drv}, "--no-sandbox is for a replay here"},
	} {
		r := runNBS(t, nil, nil, c.args...)
		lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
		if r.code == 0 || len(lines) != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("nbs %s: status %d, stderr %q; want one line with %q", strings.Join(c.args, " "), r.code, r.stderr, c.want)
		}
		assertCleanTmp(t, r)
	}
}

// BenchmarkReplay compares the time nbs takes from its start to the stop
// at the failure (running true there and cleaning up) with nix-build's
// own time to the same failure: the replay/nix-build ratio, one run of
// each per iteration (go test -run XXX -bench Replay ./cmd/nbs/).
func BenchmarkReplay(b *testing.B) {
	if _, err := exec.LookPath("nix-build"); err != nil {
		b.Skip("no nix-build")
	}
	var sum float64
	for i := 0; i < b.N; i++ {
		nonce := fmt.Sprintf("bench-%d-%d", time.Now().UnixNano(), i)
		out, err := exec.Command("nix-instantiate", "../../testdata/replay", "-A", "stdenv", "--argstr", "nonce", nonce).Output()
		if err != nil {
			b.Fatal(err)
		}
		drv := strings.TrimSpace(string(out))
		start := time.Now()
		exec.Command("nix-build", "--no-out-link", drv).Run() // fails
		nixTook := time.Since(start)
		start = time.Now()
		if out, err := exec.Command(nbsBin, "replay", drv, "true").CombinedOutput(); err != nil {
			b.Fatalf("replay: %v: %s", err, out)
		}
		took := time.Since(start)
		ratio := float64(took) / float64(nixTook)
		sum += ratio
		b.Logf("nbs replay to the stop and out: %v; nix-build to the failure: %v; ratio %.2f", took, nixTook, ratio)
	}
	b.ReportMetric(sum/float64(b.N), "replay/nix-build")
}

// TestReplayDifferential: the probe run as the builder of a replay (the
// probe derivation's bash builder execs it, as in Nix) sees what it saw
// as the builder in real Nix, with the same allowances as nbs shell.
// After the probe fails, nbs enters the replayed /build, where it wrote
// its facts.
func TestReplayDifferential(t *testing.T) {
	rs := runners(t)
	requireNix(t)
	probe := buildProbe(t)
	kept, drv := buildProbeFailureDrv(t, probe)
	if drv == "" {
		t.Fatal("no failed derivation in nix-build's log")
	}
	b, err := os.ReadFile(filepath.Join(kept, "probe.out"))
	if err != nil {
		t.Fatalf("the probe's output in the kept directory: %v", err)
	}
	nixFacts := parseFacts(t, string(b))
	seen := map[*diffRule]bool{}
	for _, r := range rs {
		t.Run(r.name, func(t *testing.T) {
			// The build has no cat: bash's read prints the file.
			res := runNBS(t, r.user, r.env, "replay", "--run", `while IFS= read -r l; do printf '%s\n' "$l"; done </build/probe.out`, drv)
			if res.code != 0 || res.stdout == "" || !strings.Contains(res.stderr, "nbs: the replayed builder failed (builder exit 1)") {
				t.Fatalf("nbs replay %s: status %d; stderr:\n%s", drv, res.code, res.stderr)
			}
			compareFacts(t, r, nixFacts, b, res.stdout, seen, "nbs replay")
			assertCleanTmp(t, res)
		})
	}
}

// TestBuildReplay: nbs build --replay [--break PHASE] --run CMD, as an
// unprivileged user: the failure is replayed and CMD runs at the stop;
// without a terminal or --run, nbs says how to replay it.
func TestBuildReplay(t *testing.T) {
	requireUserNS(t)
	requireNix(t)
	u := unprivileged(t)
	build := func(extra ...string) result {
		t.Helper()
		nonce := fmt.Sprintf("%s-%d-%d", t.Name(), time.Now().UnixNano(), nonceCounter.Add(1))
		args := append([]string{"build"}, extra...)
		r := runNBS(t, u, nil, append(args, replayNix(t), "-A", "stdenv", "--argstr", "nonce", nonce)...)
		if m := keptRE.FindStringSubmatch(r.stderr); m != nil {
			t.Cleanup(func() { removeKept(m[1]) })
		}
		return r
	}
	r := build("--replay", "--run", `echo "<$phaseLocal $PWD>"; exit 9`)
	if r.code != 9 || !strings.Contains(r.stdout, "<not-exported /build/src/deep>") ||
		!strings.Contains(r.stderr, "(the original failed in buildPhase, exit 1) in a new sandbox") {
		t.Errorf("--replay --run: status %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	assertCleanTmp(t, r)

	r = build("--replay", "--break", "buildPhase", "--run", `echo "<${LATE_EXPORT-} $EARLY_EXPORT>"`)
	if r.code != 0 || !strings.Contains(r.stdout, "< configured>") || !strings.Contains(r.stderr, "nbs: stopped before buildPhase (--break)") {
		t.Errorf("--replay --break: status %d, stdout %q; stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	assertCleanTmp(t, r)

	// Without --replay, the 0600 env-vars: nbs offers a replay, with
	// how long the original ran (two seconds or more).
	r = build("--run", "true", "--argstr", "delay", "2")
	if r.code == 0 || !regexp.MustCompile(`; or, without sudo, run the build again as you and stop at its failure \(the original ran [2-9]\d*s\): nbs replay --run true /\S+`).MatchString(r.stderr) {
		t.Errorf("nbs build --run on a 0600 env-vars: status %d; stderr:\n%s", r.code, r.stderr)
	}
	assertCleanTmp(t, r)

	r = build("--replay")
	if r.code == 0 || !regexp.MustCompile(`nbs: nbs-replay-stdenv-fail failed \(builder exit 1\); replay it with: nbs replay /nix/store/\S+\.drv`).MatchString(r.stderr) {
		t.Errorf("--replay without a terminal: status %d; stderr:\n%s", r.code, r.stderr)
	}
	assertCleanTmp(t, r)
}

// TestReplaySignals: SIGINT, SIGTERM and SIGHUP to nbs at the stop end
// every process of the replay, leave nothing in TMPDIR, and nbs exits
// 128+N, as nbs shell.
func TestReplaySignals(t *testing.T) {
	requireUserNS(t)
	drv, _, _ := nixBuildReplay(t, "stdenv", true)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			marker := fmt.Sprintf("%d", 300000+time.Now().UnixNano()%100000)
			tmp := privateTmp(t)
			cmd := exec.Command(nbsBin, "replay", "--run", "sleep "+marker+" & echo started; wait", drv)
			cmd.Env = []string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=/nonexistent"}
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(out)
			for sc.Scan() && sc.Text() != "started" {
			}
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			go io.Copy(io.Discard, out)
			endedBySignal(t, cmd, sig, "sleep "+marker, tmp)
		})
	}
}

// TestReplayBuildEnv: what Nix hands the builder — environment,
// passAsFile file, exportReferencesGraph file, .attrs.json and
// .attrs.sh, with structured attrs also holding exportReferencesGraph's
// path infos — is byte for byte what a replay hands it. Nix before
// 2.13.4 (and 2.14) points NIX_ATTRS_*_FILE at its host directory, which
// does not exist in the sandbox; the replay has /build there.
func TestReplayBuildEnv(t *testing.T) {
	requireUserNS(t)
	u := unprivileged(t)
	for _, attr := range []string{"envDump", "structured", "structuredGraph"} {
		t.Run(attr, func(t *testing.T) {
			drv, kept, _ := nixBuildReplay(t, attr, true)
			entries, err := os.ReadDir(kept)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			var nixOut strings.Builder
			for _, e := range entries {
				names = append(names, e.Name())
				b, err := os.ReadFile(filepath.Join(kept, e.Name()))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&nixOut, "== %s\n%s", e.Name(), b)
			}
			// .attrs.sh sets PATH (not exported) for cat.
			script := `cd /build; [ -e .attrs.sh ] && source .attrs.sh; ls -A | tr '\n' ' '; echo; for f in ` + strings.Join(names, " ") + `; do echo "== $f"; cat "$f"; done`
			r := runNBS(t, u, nil, "replay", "--run", script, drv)
			if r.code != 0 {
				t.Fatalf("replay: status %d; stderr:\n%s", r.code, r.stderr)
			}
			listing, replayOut, _ := strings.Cut(r.stdout, "\n")
			if strings.Join(strings.Fields(listing), " ") != strings.Join(names, " ") {
				t.Errorf("the replay's /build holds %s; Nix's %s", listing, strings.Join(names, " "))
			}
			want := nixOut.String()
			if attr != "envDump" {
				hostDir := regexp.MustCompile(`(NIX_ATTRS_(JSON|SH)_FILE=")` + regexp.QuoteMeta(kept))
				want = hostDir.ReplaceAllString(want, "${1}/build")
			}
			if replayOut != want {
				t.Errorf("the builder's world differs:\n--- nix\n%s\n--- replay\n%s", want, replayOut)
			}
			assertCleanTmp(t, r)
		})
	}
}
