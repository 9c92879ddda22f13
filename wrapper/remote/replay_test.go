package remote

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nix-build-shell/nbs/nix"
)

// TestCheckShipped: a shipped derivation whose inputs all exist passes;
// one with input derivations, or missing inputs, is refused, each
// missing path named once.
func TestCheckShipped(t *testing.T) {
	dir := t.TempDir()
	have := filepath.Join(dir, "have")
	os.WriteFile(have, nil, 0o755)
	gone := filepath.Join(dir, "gone")
	ship := func(d *nix.Derivation) string {
		f := filepath.Join(dir, "x.drv")
		if err := os.WriteFile(f, d.Unparse(), 0o600); err != nil {
			t.Fatal(err)
		}
		return f
	}
	d := &nix.Derivation{Outputs: []nix.Output{{Name: "out", Path: "/nix/store/o-x"}}, InputDrvs: map[string][]string{},
		InputSrcs: []string{have}, Platform: "x86_64-linux", Builder: have, Env: map[string]string{"name": "x"}}
	if err := CheckShipped(ship(d), "/nix/store/a-x.drv"); err != nil {
		t.Errorf("all inputs there: %v", err)
	}
	d.InputSrcs, d.Builder = []string{have, gone}, gone
	err := CheckShipped(ship(d), "/nix/store/a-x.drv")
	var re *Error
	if !errors.As(err, &re) || strings.Count(err.Error(), gone) != 1 || !strings.Contains(err.Error(), "x: 1 of the build's inputs are not on this builder") {
		t.Errorf("missing input: %v", err)
	}
	d.InputDrvs = map[string][]string{"/nix/store/b-y.drv": {"out"}}
	if err := CheckShipped(ship(d), "/nix/store/a-x.drv"); err == nil || !strings.Contains(err.Error(), "input derivations") {
		t.Errorf("input derivations: %v", err)
	}
	if err := CheckShipped(filepath.Join(dir, "none.drv"), "/nix/store/a-x.drv"); err == nil {
		t.Error("no file: no error")
	}
}

// TestReplayArgs: the remote nbs replay gets the shipped file, what is
// known of the original, --break, --run and the command, and TARGET
// after "--".
func TestReplayArgs(t *testing.T) {
	o := Options{Script: "echo hi", Debug: true, Replay: &Replay{Drv: "/nix/store/a-x.drv", Phase: "buildPhase", Exit: 2, Break: "checkPhase"}}
	got := strings.Join(replayArgs(o, "/tmp/d/a-x.drv"), " ")
	want := "replay --shipped /tmp/d/a-x.drv --original-exit 2 --debug --original-phase buildPhase --break checkPhase --run echo hi -- /nix/store/a-x.drv"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	o = Options{Command: []string{"make", "-j1"}, Replay: &Replay{Drv: "/nix/store/a-x.drv", Exit: -1}}
	if got := strings.Join(replayArgs(o, "/tmp/d/a-x.drv"), " "); got != "replay --shipped /tmp/d/a-x.drv --original-exit -1 -- /nix/store/a-x.drv make -j1" {
		t.Errorf("got %s", got)
	}
}
