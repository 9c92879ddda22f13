package nix_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"testing"
)

// nixosGo is the Go of each NixOS release branch: the minor version its
// default `go` attribute (pkgs/top-level/all-packages.nix, go = go_1_N)
// has throughout that branch. A branch missing here fails the test: add
// it when the flake moves to it.
var nixosGo = map[string]string{
	"nixos-23.11": "1.21",
	"nixos-24.05": "1.22",
	"nixos-24.11": "1.23",
	"nixos-25.05": "1.24",
	"nixos-25.11": "1.25",
}

// TestFlakeGoVersion: buildGoModule builds with GOTOOLCHAIN=local, so the
// Go of the flake's pinned nixpkgs must satisfy go.mod's `go` line; and a
// line lower than that Go would let code that needs it slip in untested,
// so the two must name the same Go 1.N.
//
// What it can check offline: the branch flake.lock pinned ("original"
// ref; TestFlakeLock checks it is the one flake.nix asks for) against
// the table above. It cannot see the patch level of the Go at the locked
// revision, so go.mod must not ask for one (go 1.N or go 1.N.0).
func TestFlakeGoVersion(t *testing.T) {
	root := repoRoot(t)
	mod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^go\s+(1\.\d+)(\.\d+)?\s*$`).FindSubmatch(mod)
	if m == nil {
		t.Fatal("go.mod: no `go 1.N` line")
	}
	goLine, patch := string(m[1]), string(m[2])

	data, err := os.ReadFile(filepath.Join(root, "flake.lock"))
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Root  string
		Nodes map[string]struct {
			Inputs   map[string]any
			Original struct{ Ref string }
		}
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatalf("flake.lock: %v", err)
	}
	name, _ := lock.Nodes[lock.Root].Inputs["nixpkgs"].(string)
	branch := lock.Nodes[name].Original.Ref
	want, ok := nixosGo[branch]
	if !ok {
		t.Fatalf("flake.lock pins nixpkgs %q, whose Go this test does not know: add it to nixosGo", branch)
	}
	if goLine != want {
		t.Errorf("go.mod says go %s, the flake's nixpkgs (%s) builds with Go %s: make them agree (go.mod's go line, or inputs.nixpkgs.url and `nix flake lock`)", goLine, branch, want)
	}
	if patch != "" && patch != ".0" {
		t.Errorf("go.mod says go %s%s: the patch level of %s's Go cannot be checked here; say go %s", goLine, patch, branch, goLine)
	}
}
