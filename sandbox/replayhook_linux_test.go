package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// A stdenv-like builder: setup defines runPhase and genericBuild and
// turns on errexit; the failing phase sets a variable without exporting
// it, defines a function, exports after the phase started and cd's.
const hookTestBuilder = `
runPhase() { local curPhase="$1"; dumpVars; eval "${!curPhase:-$curPhase}"; }
genericBuild() { for curPhase in $phases; do runPhase "$curPhase"; done; }
dumpVars() { export -p >"$NIX_BUILD_TOP/env-vars"; }
trap 'echo exitHandler ran' EXIT
shopt -s nullglob
set -eu
configurePhase() { export EARLY=early; }
buildPhase() { local phaseLocal=loc; notExported=ne; phaseFn() { :; }; export LATE_EXPORT=late; mkdir -p src/deep; cd src/deep; false; echo not reached; }
phases="configurePhase buildPhase"
genericBuild
`

func runHook(t *testing.T, c hookConfig) (string, string, int) {
	t.Helper()
	dir := t.TempDir()
	c.reportDir, c.reportName = dir, replayReport
	c.bash = hookBash(t)
	return runHookText(t, dir, bashHook(c))
}

func hookBash(t *testing.T) string {
	bash, err := exec.LookPath("bash-static")
	if err != nil {
		if _, err := os.Stat("/bin/bash-static"); err != nil {
			missingBash(t)
		}
		bash = "/bin/bash-static"
	}
	return bash
}

func missingBash(t *testing.T) {
	if os.Getenv("NBS_E2E_REQUIRED") != "" {
		t.Fatal("no bash-static (Debian's bash-static)")
	}
	t.Skip("SKIPPED: no bash-static (Debian's bash-static)")
}

func runHookText(t *testing.T, dir, text string) (string, string, int) {
	t.Helper()
	bash := hookBash(t)
	hook := filepath.Join(dir, "hook")
	if err := os.WriteFile(hook, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bash, "-c", hookTestBuilder, "zero", "top-arg")
	cmd.Dir = dir
	// The hook closes fd 3, which the real one reads from.
	cmd.Env = []string{"BASH_ENV=" + hook, "NIX_BUILD_TOP=" + dir, "PATH=" + os.Getenv("PATH")}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	status := 0
	if ee, ok := err.(*exec.ExitError); ok {
		status = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	report, _ := os.ReadFile(filepath.Join(dir, replayReport))
	return out.String(), errb.String() + "\nREPORT:" + string(report), status
}

func TestBashHookRun(t *testing.T) {
	out, errs, status := runHook(t, hookConfig{script: `echo "$phaseLocal $notExported $LATE_EXPORT ${PWD#"$NIX_BUILD_TOP"} $curPhase"; declare -F phaseFn; [[ $- == *e* ]] && echo errexit; shopt -q nullglob && echo nullglob; declare -p BASH_ENV >/dev/null 2>&1 || echo no-BASH_ENV; exit 7`})
	if status != 7 {
		t.Errorf("status %d, want 7 (the script's)\n%s\n%s", status, out, errs)
	}
	for _, w := range []string{"loc ne late /src/deep buildPhase", "phaseFn", "errexit", "nullglob", "no-BASH_ENV"} {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s\n%s", w, out, errs)
		}
	}
	if strings.Contains(out, "exitHandler ran") || strings.Contains(out, "not reached") {
		t.Errorf("the build went on after the stop:\n%s", out)
	}
	if !strings.Contains(errs, "REPORT:failed 1 buildPhase") || !strings.Contains(errs, "nbs: the replay failed in buildPhase (exit 1) at: false") {
		t.Errorf("stderr/report:\n%s", errs)
	}
}

func TestBashHookBreak(t *testing.T) {
	out, errs, status := runHook(t, hookConfig{breakPhase: "buildPhase", script: `echo "[${EARLY-}] [${LATE_EXPORT-}] $PWD <$0 $# $1>"; declare -f runPhase | grep -c __nbs`})
	if status != 1 { // grep -c found nothing
		t.Errorf("status %d\n%s\n%s", status, out, errs)
	}
	// At the top of runPhase, with its arguments.
	if !strings.Contains(out, "[early] [] ") || !strings.Contains(out, " <zero 1 buildPhase>") || !strings.Contains(errs, "REPORT:break buildPhase") {
		t.Errorf("output:\n%s\n%s", out, errs)
	}
}

func TestBashHookDump(t *testing.T) {
	// The interactive shell, fed from a file instead of a terminal.
	dir := t.TempDir()
	in := filepath.Join(dir, "input")
	cmds := `echo "$phaseLocal $notExported $LATE_EXPORT ${PWD##*/} $curPhase <$0 $#>"; declare -F phaseFn; trap -p EXIT; [[ $- == *e* ]] || echo no-errexit; shopt -q nullglob && echo nullglob; declare -p BASH_ENV __nbs_status; exit 3` + "\n"
	if err := os.WriteFile(in, []byte(cmds), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errs, status := runHookText(t, dir, bashHook(hookConfig{reportDir: dir, reportName: replayReport, stdin: in, bash: hookBash(t)}))
	if status != 3 {
		t.Errorf("status %d\n%s\n%s", status, out, errs)
	}
	if strings.Contains(out, "declare") {
		t.Errorf("nbs's variables or BASH_ENV are in the restored shell:\n%s", out)
	}
	// buildPhase was called without arguments, by a script whose $0 is
	// zero.
	for _, w := range []string{"loc ne late deep buildPhase <zero 0>", "phaseFn", "exitHandler ran", "no-errexit", "nullglob"} {
		if !strings.Contains(out, w) {
			t.Errorf("restored shell lacks %q:\n%s\n%s", w, out, errs)
		}
	}
}
