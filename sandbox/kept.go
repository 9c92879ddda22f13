package sandbox

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// workDirPrefix starts the name of every work directory (workdir_linux.go).
const workDirPrefix = "nbs-"

// originFile, next to the .lock of a work directory kept with --keep,
// names the kept build directory the copy was made from (one line,
// absolute, symlinks resolved). Its presence also marks the work
// directory as kept: CleanStale leaves it alone.
const originFile = ".origin"

// KeptCopy is a copy of a build directory that nbs shell --keep kept.
type KeptCopy struct {
	// Dir is the copy: the directory that was /build.
	Dir string
	// Origin is the kept build directory it was copied from.
	Origin string
	// Time is when the sandbox ended.
	Time time.Time
}

// CanonicalDir is the form in which an origin is recorded and compared:
// absolute, cleaned, symlinks resolved where possible.
func CanonicalDir(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	if real, err := filepath.EvalSymlinks(dir); err == nil {
		dir = real
	}
	return filepath.Clean(dir)
}

// KeptCopies lists the copies kept in the work directory bases (nbs
// creates work directories in $TMPDIR), newest first.
func KeptCopies(bases []string) []KeptCopy {
	var out []KeptCopy
	seen := map[string]bool{}
	for _, base := range bases {
		b := CanonicalDir(base)
		if seen[b] {
			continue
		}
		seen[b] = true
		entries, err := os.ReadDir(b)
		if err != nil {
			continue
		}
		for _, e := range entries {
			if !e.IsDir() || !strings.HasPrefix(e.Name(), workDirPrefix) {
				continue
			}
			if k, ok := readKept(filepath.Join(b, e.Name())); ok {
				out = append(out, k)
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Time.After(out[j].Time) })
	return out
}

// ReadKeptCopy reads the copy dir, given as the copy itself (the path nbs
// shell --keep printed) or as its work directory.
func ReadKeptCopy(dir string) (KeptCopy, error) {
	dir = CanonicalDir(dir)
	for _, wd := range []string{filepath.Dir(dir), dir} {
		if k, ok := readKept(wd); ok {
			return k, nil
		}
	}
	return KeptCopy{}, fmt.Errorf("read kept copy: %s is not a copy kept by nbs shell --keep (no %s next to it)", dir, originFile)
}

func readKept(workDir string) (KeptCopy, bool) {
	p := filepath.Join(workDir, originFile)
	info, err := os.Lstat(p)
	if err != nil || !info.Mode().IsRegular() {
		return KeptCopy{}, false
	}
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return KeptCopy{}, false
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return KeptCopy{}, false
	}
	origin := strings.TrimSuffix(string(b), "\n")
	if !filepath.IsAbs(origin) {
		return KeptCopy{}, false
	}
	return KeptCopy{Dir: filepath.Join(workDir, "build"), Origin: origin, Time: info.ModTime()}, true
}

// writeOrigin records origin in the work directory dir, marking it kept.
func writeOrigin(dir, origin string, owner *Owner) error {
	// The work directory belongs to the sandbox user, who could have
	// planted a symlink here; nbs may be root: create, never follow.
	p := filepath.Join(dir, originFile)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("mark copy as kept: %w", err)
	}
	defer f.Close()
	if _, err := f.WriteString(origin + "\n"); err != nil {
		return fmt.Errorf("mark copy as kept: %w", err)
	}
	if owner != nil {
		if err := f.Chown(owner.UID, owner.GID); err != nil {
			return fmt.Errorf("mark copy as kept: %w", err)
		}
	}
	return nil
}
