package nix

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrNotKeptDir means a directory holds no env-vars where a kept build
// directory would.
var ErrNotKeptDir = errors.New("not a kept Nix build directory")

// ErrNoEnvVarsYet means a kept build directory whose build failed before
// stdenv's first phase wrote env-vars: Nix wrote .attrs.json and
// .attrs.sh (structured attrs), and nothing of the build's shell state
// was recorded. Nix before 2.13.4 is the common cause: it sets
// NIX_ATTRS_SH_FILE to the host path of the build directory
// (NixOS/nix#6736), which nixpkgs' source-stdenv.sh cannot source.
var ErrNoEnvVarsYet = errors.New("the build failed before stdenv's first phase wrote env-vars")

// FindBuildDir returns the directory holding env-vars for a directory a user
// passed in: dir itself for a flat kept directory (Nix ≤ 2.23, Lix ≤ 2.93,
// builds without the sandbox), else dir/build (Nix 2.24+, given the top) or
// dir/b (Lix 2.94+, whose note names the top): every place Layout.Inner
// gives, whatever dir is called.
//
// env-vars only has to exist: recent nixpkgs creates it 0600 for the build
// user, so the caller may well be unable to read it. That is a problem for
// whoever reads it next, not a reason to call the directory something else.
//
// An error names the path involved: dir itself when it is missing, not a
// directory or not searchable (the os error is wrapped, so errors.Is works
// with fs.ErrNotExist, fs.ErrPermission and syscall.ENOTDIR), or dir with
// ErrNotKeptDir when there is no env-vars in any of the places.
func FindBuildDir(dir string) (string, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return "", fmt.Errorf("find build directory: %w", err)
	}
	if !fi.IsDir() {
		// What open(O_DIRECTORY) would say, so callers can test for
		// syscall.ENOTDIR like for the other os errors.
		return "", fmt.Errorf("find build directory: %w",
			&fs.PathError{Op: "open", Path: dir, Err: syscall.ENOTDIR})
	}
	for _, in := range innerAny {
		cand := dir // as given, the way the caller will print it
		if in != "." {
			cand = filepath.Join(dir, in)
		}
		found, err := hasEnvVars(cand)
		if err != nil {
			return "", err
		}
		if found {
			return cand, nil
		}
	}
	for _, in := range innerAny {
		if _, err := os.Lstat(filepath.Join(dir, in, ".attrs.json")); err == nil {
			return "", fmt.Errorf("find build directory: %s has .attrs.json but no env-vars: %w", filepath.Join(dir, in), ErrNoEnvVarsYet)
		}
	}
	return "", fmt.Errorf("find build directory: %s has no env-vars, build/env-vars or b/env-vars: %w", dir, ErrNotKeptDir)
}

// hasEnvVars reports whether dir/env-vars exists. A missing dir counts as no,
// since build/ and b/ are only candidates; any other failure (EACCES on a
// 0700 directory of another user, above all) is reported, because guessing
// past it would blame the wrong thing.
func hasEnvVars(dir string) (bool, error) {
	_, err := os.Lstat(filepath.Join(dir, "env-vars"))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, fs.ErrNotExist), errors.Is(err, syscall.ENOTDIR):
		return false, nil
	}
	return false, fmt.Errorf("find build directory: %w", err)
}

// Layout is one way Nix or Lix names the build directory it creates in
// its build-dir (the top) and places the build's own directory, the one
// that is /build in the sandbox and holds env-vars, inside it.
type Layout int

const (
	// LayoutUnknown: not a name Nix or Lix gives.
	LayoutUnknown Layout = iota
	// LayoutNamed is nix-build-NAME.drv-N: Nix 2.3–2.29 and Lix up to
	// 2.93 (createTempDir(buildDir, "nix-build-" + drvPath.name()) in
	// LocalDerivationGoal::startBuilder, src/libstore/build.cc and
	// src/libstore/{,unix/}build/local-derivation-goal.cc; tempName in
	// src/libutil/util.cc or file-system.cc appends "-N"). The build's
	// own directory is the top itself up to Nix 2.23, in older Lix and
	// without the sandbox; TOP/build in sandboxed builds from Nix 2.24
	// on (the CVE-2024-38531 fix: topTmpDir + "/build"); TOP/b in Lix
	// from its June 2025 fixes (tmpDirRoot + "/b" in
	// LocalDerivationGoal::startBuilder,
	// lix/libstore/build/local-derivation-goal.cc, whose note names
	// the top).
	LayoutNamed
	// LayoutNamedPID is nix-build-NAME.drv-PID-N: Nix 2.30.0–2.30.3 and
	// 2.31.0–2.31.1, whose createTempDir names through makeTempPath
	// (src/libutil/file-system.cc: ROOT/PREFIX-PID-COUNTER). TOP/build
	// when sandboxed, else the top.
	LayoutNamedPID
	// LayoutPID is nix-PID-N: Nix 2.30.4+, 2.31.2+ and 2.32 on
	// (DerivationBuilderImpl::startBuild, createTempDir(buildDir, "nix"),
	// src/libstore/unix/build/derivation-builder.cc). TOP/build when
	// sandboxed (ChrootDerivationBuilder::setBuildTmpDir), else the top.
	LayoutPID
	// LayoutLix is ID in Lix's build-dir b/ (Lix 2.94+: createTempSubdir
	// in LocalDerivationGoal::startBuilder,
	// lix/libstore/build/local-derivation-goal.cc), the build's own
	// directory always TOP/b on Linux. The ID says nothing, so only the
	// parent's name b tells it; in another build-dir only FindBuildDir,
	// which looks at the disk, finds it.
	LayoutLix
)

// lixRoot is the name of Lix 2.94+'s build-dir in its state directory.
const lixRoot = "b"

// inner is where each layout may put the build's own directory inside
// the top, in the order they are tried ("." is the top itself).
var inner = map[Layout][]string{
	LayoutNamed:    {".", "build", "b"},
	LayoutNamedPID: {".", "build"},
	LayoutPID:      {".", "build"},
	LayoutLix:      {"b"},
}

// innerAny is what FindBuildDir tries, not knowing the layout: every
// layout's places, in the layouts' order (the flat one first, then Nix's
// build, then Lix's b).
var innerAny = func() []string {
	var l []string
	for y := LayoutNamed; y <= LayoutLix; y++ {
		for _, in := range y.Inner() {
			if !slices.Contains(l, in) {
				l = append(l, in)
			}
		}
	}
	return l
}()

// Inner lists where the build's own directory may be, relative to the
// top, in the order to try them: "." for the top itself (Nix ≤ 2.23,
// older Lix, builds without the sandbox), "build" (Nix 2.24+), "b"
// (Lix since June 2025). Nil for LayoutUnknown.
func (l Layout) Inner() []string { return inner[l] }

func (l Layout) String() string {
	switch l {
	case LayoutNamed:
		return "nix-build-NAME.drv-N"
	case LayoutNamedPID:
		return "nix-build-NAME.drv-PID-N"
	case LayoutPID:
		return "nix-PID-N"
	case LayoutLix:
		return lixRoot + "/ID"
	}
	return "unknown"
}

// BuildDir is what a path says, by its name alone, about the build
// directory it is in.
type BuildDir struct {
	// Top is the directory Nix (or Lix) created in its build-dir.
	Top    string
	Layout Layout
	// In is the path's place inside Top: "." for Top itself, else
	// "build" or "b", the build's own directory.
	In string
	// Name is the derivation's name when Top's name carries it
	// (LayoutNamed, LayoutNamedPID), else "".
	Name string
}

var (
	reNamed = LazyRegexp(`^nix-build-(.+)\.drv-([0-9]+)(-[0-9]+)?$`)
	rePID   = LazyRegexp(`^nix-[0-9]+-[0-9]+$`)
)

// ParseBuildDir recognises p (slash-separated, absolute or not) as a
// top directory Nix or Lix creates for a build, or as the build's own
// directory inside one (TOP/build, TOP/b); ok is false for anything
// else. It only reads the name: whether TOP/build exists is for
// FindBuildDir to find out.
func ParseBuildDir(p string) (b BuildDir, ok bool) {
	p = path.Clean(p)
	if b, ok := parseTop(p); ok {
		return b, true
	}
	dir, base := path.Split(p)
	if base == "" || dir == "" {
		return BuildDir{}, false
	}
	b, ok = parseTop(path.Clean(dir))
	if !ok || !slices.Contains(b.Layout.Inner(), base) {
		return BuildDir{}, false
	}
	b.In = base
	return b, true
}

// PID is the Nix process that created Top when its name carries it
// (LayoutNamedPID, LayoutPID), else 0.
func (b BuildDir) PID() int {
	base := path.Base(b.Top)
	var num string
	switch b.Layout {
	case LayoutNamedPID:
		m := reNamed().FindStringSubmatch(base)
		if m == nil {
			return 0
		}
		num = m[2]
	case LayoutPID:
		num = strings.Split(base, "-")[1]
	default:
		return 0
	}
	pid, err := strconv.Atoi(num)
	if err != nil {
		return 0
	}
	return pid
}

// parseTop recognises a top directory by its name (and, for Lix, its
// parent's).
func parseTop(p string) (BuildDir, bool) {
	dir, base := path.Split(p)
	b := BuildDir{Top: p, In: "."}
	if m := reNamed().FindStringSubmatch(base); m != nil {
		b.Name, b.Layout = m[1], LayoutNamed
		if m[3] != "" {
			b.Layout = LayoutNamedPID
		}
		return b, true
	}
	if rePID().MatchString(base) {
		b.Layout = LayoutPID
		return b, true
	}
	if base != "" && base != "." && base != ".." && path.Base(path.Clean(dir)) == lixRoot && dir != "" {
		b.Layout = LayoutLix
		return b, true
	}
	return BuildDir{}, false
}
