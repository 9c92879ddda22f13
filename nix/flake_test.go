package nix_test

// Checks on the repository's Nix entry points: flake.nix (the nbs package)
// and the two demo packages nix/hello-world and nix/wttr. None of them can
// be built here (they need nixpkgs from the internet); what can rot
// silently is checked instead: the flake's vendorHash against the module
// graph, the flake.lock against the flake's input, and that every file
// parses.
//
// The tests that need Nix skip loudly where it is missing, and fail
// instead when NBS_E2E_REQUIRED is set (CI, .ci/run).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// nixFiles are the Nix expressions of the repository, relative to its root.
var nixFiles = []string{
	"flake.nix",
	"nix/hello-world/default.nix",
	"nix/wttr/default.nix",
}

// TestFlakeVendorHash recomputes buildGoModule's vendorHash the way nixpkgs
// does (the NAR hash of the tree `go mod vendor` writes) and compares it
// with the one in flake.nix. It changes whenever go.mod, go.sum or the set
// of imported packages changes.
func TestFlakeVendorHash(t *testing.T) {
	root := repoRoot(t)
	want := flakeVendorHash(t, root)
	nixBin := needTool(t, "nix")
	goBin := goTool(t)

	vendor := filepath.Join(t.TempDir(), "vendor")
	cmd := exec.Command(goBin, "mod", "vendor", "-o", vendor)
	cmd.Dir = root
	// Only go.mod/go.sum decide: no workspace, no -mod=vendor from the
	// caller's GOFLAGS.
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		// Typically no network and no module cache: a missing
		// prerequisite, not a wrong hash.
		missing(t, "go mod vendor: %v\n%s", err, out)
	}
	if _, err := os.Stat(vendor); err != nil {
		t.Fatalf("go mod vendor wrote no vendor directory (%v); buildGoModule would need vendorHash = null", err)
	}

	// `nix hash path` prints the SRI sha256 of the NAR serialisation by
	// default; it needs neither a store nor a daemon.
	cmd = exec.Command(nixBin, "--extra-experimental-features", "nix-command", "hash", "path", vendor)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("nix hash path %s: %v\n%s", vendor, err, stderr.Bytes())
	}
	got := strings.TrimSpace(string(out))
	if !strings.HasPrefix(got, "sha256-") {
		t.Fatalf("nix hash path printed %q, want an SRI sha256 hash", got)
	}
	if got != want {
		t.Errorf("flake.nix: vendorHash is stale (go.mod, go.sum or the imports changed).\n"+
			"  flake.nix has: %s\n"+
			"  computed:      %s\n"+
			"Put this line in flake.nix:\n"+
			"          vendorHash = %q;", want, got, got)
	}
}

// TestFlakeParses parses every Nix file of the repository with the
// installed Nix. The dummy store keeps nix-instantiate away from the daemon
// and the real store, so that any user can run it.
func TestFlakeParses(t *testing.T) {
	root := repoRoot(t)
	nixInstantiate := needTool(t, "nix-instantiate")
	for _, f := range nixFiles {
		t.Run(f, func(t *testing.T) {
			path := filepath.Join(root, f)
			out, err := exec.Command(nixInstantiate, "--store", "dummy://", "--parse", path).CombinedOutput()
			if err != nil && bytes.Contains(out, []byte("dummy")) {
				// A Nix without the dummy store: parse with the default one.
				out, err = exec.Command(nixInstantiate, "--parse", path).CombinedOutput()
			}
			if err != nil {
				t.Errorf("nix-instantiate --parse %s: %v\n%s", f, err, out)
			}
		})
	}
}

// TestFlakeLock checks that flake.lock locks the nixpkgs input flake.nix
// asks for (a changed inputs.nixpkgs.url needs `nix flake lock`), with a
// revision and a NAR hash. Pure Go: runs everywhere.
func TestFlakeLock(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`nixpkgs\.url\s*=\s*"github:([^/"]+)/([^/"]+)/([^/"?]+)"`).FindSubmatch(src)
	if m == nil {
		t.Fatal(`flake.nix: no inputs.nixpkgs.url = "github:OWNER/REPO/REF"`)
	}
	owner, repo, ref := string(m[1]), string(m[2]), string(m[3])

	data, err := os.ReadFile(filepath.Join(root, "flake.lock"))
	if err != nil {
		t.Fatalf("%v (run `nix flake lock` with network access)", err)
	}
	var lock struct {
		Version int
		Root    string
		Nodes   map[string]struct {
			Inputs   map[string]any
			Locked   flakeRef
			Original flakeRef
		}
	}
	if err := json.Unmarshal(data, &lock); err != nil {
		t.Fatalf("flake.lock: %v", err)
	}
	if lock.Version != 7 {
		t.Errorf("flake.lock: version %d, want 7", lock.Version)
	}
	name, ok := lock.Nodes[lock.Root].Inputs["nixpkgs"].(string)
	if !ok {
		t.Fatalf("flake.lock: root node %q has no nixpkgs input", lock.Root)
	}
	node, ok := lock.Nodes[name]
	if !ok {
		t.Fatalf("flake.lock: no node %q", name)
	}
	want := flakeRef{Type: "github", Owner: owner, Repo: repo, Ref: ref}
	if node.Original != want {
		t.Errorf("flake.lock locks %+v, flake.nix asks for %+v: run `nix flake lock --update-input nixpkgs`", node.Original, want)
	}
	l := node.Locked
	if l.Type != "github" || !strings.EqualFold(l.Owner, owner) || l.Repo != repo ||
		!regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(l.Rev) ||
		!regexp.MustCompile(`^sha256-[A-Za-z0-9+/]{43}=$`).MatchString(l.NarHash) ||
		l.LastModified <= 0 {
		t.Errorf("flake.lock: incomplete locked nixpkgs %+v", l)
	}
}

// flakeRef is an input reference as flake.lock records it.
type flakeRef struct {
	Type, Owner, Repo, Ref, Rev, NarHash string
	LastModified                         int64
}

// flakeVendorHash returns the one vendorHash written in flake.nix.
func flakeVendorHash(t *testing.T, root string) string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join(root, "flake.nix"))
	if err != nil {
		t.Fatal(err)
	}
	ms := regexp.MustCompile(`(?m)^\s*vendorHash\s*=\s*"([^"]*)"\s*;`).FindAllSubmatch(src, -1)
	if len(ms) != 1 {
		t.Fatalf(`flake.nix: want exactly one line vendorHash = "sha256-…"; found %d`, len(ms))
	}
	return string(ms[0][1])
}

// repoRoot is the directory holding go.mod and flake.nix, above the
// package directory the test runs in.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if fileExists(filepath.Join(d, "go.mod")) && fileExists(filepath.Join(d, "flake.nix")) {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no directory with go.mod and flake.nix above %s", dir)
		}
	}
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// needTool returns the path of a Nix program, or skips (fails in CI).
func needTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found on PATH: Nix is not installed (Debian: apt-get install nix-bin)", name)
	}
	return path
}

// goTool returns the go command: the one on PATH, else the one this test
// was built with.
func goTool(t *testing.T) string {
	t.Helper()
	if path, err := exec.LookPath("go"); err == nil {
		return path
	}
	path := filepath.Join(runtime.GOROOT(), "bin", "go")
	if !fileExists(path) {
		missing(t, "go command not found on PATH nor in %s", runtime.GOROOT())
	}
	return path
}

// missing skips the test with the reason, or fails it when
// NBS_E2E_REQUIRED is set (CI installs every prerequisite).
func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if os.Getenv("NBS_E2E_REQUIRED") != "" {
		t.Fatalf("prerequisite missing (NBS_E2E_REQUIRED is set): %s", reason)
	}
	t.Skipf("SKIPPED, prerequisite missing: %s (set NBS_E2E_REQUIRED=1 to make this a failure)", reason)
}
