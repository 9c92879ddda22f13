package nix

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// KeptDir is a build directory found on this machine: one Nix kept after
// a failure (or, while a build runs, the one it is using).
type KeptDir struct {
	// Dir is the directory to enter: the one holding env-vars when it
	// could be found, else what was found in the search location.
	Dir string
	// Top is what was found in the search location: Dir, or the
	// directory holding it (nix-PID-N holding build/). Removing the
	// build removes Top.
	Top string
	// Name is the derivation's name (env-vars' name, else taken from
	// the directory's name by ParseBuildDir); "" when unknown.
	Name string
	// Time is when the build's last phase began (stdenv rewrites
	// env-vars before each phase), else the directory's mtime.
	Time time.Time
	// Err says why the directory could not be looked into, typically
	// fs.ErrPermission for Nix's build user's 0700 directories.
	Err error
}

// KeptSearch says where kept build directories are looked for.
type KeptSearch struct {
	// TmpDirs hold nix-build-* directories: Nix's build-dir default up
	// to 2.29 is the temporary directory of whoever builds (the
	// daemon's is /tmp, nix-build without a daemon uses $TMPDIR). Only
	// names ParseBuildDir recognises are looked at there.
	TmpDirs []string
	// StateDir is /nix/var/nix, whose stateRoots are build-dirs: every
	// directory in them is looked at.
	StateDir string
}

// stateRoots are the build-dirs in Nix's state directory: builds, the
// default build-dir of Nix 2.30+ (store.config->getBuildDir() in
// DerivationBuilderImpl::startBuild,
// src/libstore/unix/build/derivation-builder.cc) and of Lix 2.92.2 and
// 2.93.1, and b (Lix 2.94+).
var stateRoots = []string{"builds", lixRoot}

// DefaultKeptSearch looks in $TMPDIR, /tmp and /nix/var/nix.
func DefaultKeptSearch() KeptSearch {
	tmp := []string{"/tmp"}
	if d := os.Getenv("TMPDIR"); d != "" {
		tmp = append([]string{d}, tmp...)
	}
	return KeptSearch{TmpDirs: tmp, StateDir: "/nix/var/nix"}
}

// Roots lists the directories in which s looks for build directories:
// the TmpDirs, then the build-dirs in StateDir.
func (s KeptSearch) Roots() []string {
	l := append([]string(nil), s.TmpDirs...)
	if s.StateDir != "" {
		for _, r := range stateRoots {
			l = append(l, filepath.Join(s.StateDir, r))
		}
	}
	return l
}

// Locations lists the directories s searches, for messages.
func (s KeptSearch) Locations() []string {
	var l []string
	for _, d := range s.TmpDirs {
		l = append(l, filepath.Join(d, "nix-build-*"))
	}
	for _, r := range s.Roots()[len(s.TmpDirs):] {
		l = append(l, filepath.Join(r, "*"))
	}
	return l
}

// FindKept lists the build directories in the places s names, newest
// first. Directories that are not build directories (no env-vars) are
// left out; ones that cannot be looked into are listed with Err set.
func FindKept(s KeptSearch) []KeptDir {
	type cand struct{ path, base string }
	var cands []cand
	seen := map[string]bool{}
	add := func(dir string, match func(path string) bool) {
		real, err := filepath.EvalSymlinks(dir)
		if err != nil {
			return
		}
		if seen[real] {
			return
		}
		seen[real] = true
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			if p := filepath.Join(dir, e.Name()); e.IsDir() && match(p) {
				cands = append(cands, cand{p, e.Name()})
			}
		}
	}
	for _, d := range s.TmpDirs {
		// A temporary directory holds all sorts: only names Nix gives
		// (a build-dir set to it gets nix-PID-N there too).
		add(d, func(p string) bool {
			b, ok := ParseBuildDir(p)
			return ok && b.In == "."
		})
	}
	// The rest are build-dirs: whatever holds env-vars is a build's,
	// including Lix's, whose names say nothing.
	for _, r := range s.Roots()[len(s.TmpDirs):] {
		add(r, func(string) bool { return true })
	}

	var out []KeptDir
	for _, c := range cands {
		k := KeptDir{Dir: c.path, Top: c.path}
		if b, ok := ParseBuildDir(c.path); ok {
			k.Name = b.Name
		}
		if info, err := os.Lstat(c.path); err == nil {
			k.Time = info.ModTime()
		}
		dir, err := FindBuildDir(c.path)
		switch {
		case errors.Is(err, ErrNotKeptDir):
			continue
		case err != nil:
			k.Err = err
		default:
			k.Dir = dir
			env := filepath.Join(dir, "env-vars")
			if info, err := os.Lstat(env); err == nil {
				k.Time = info.ModTime()
			}
			if ev, err := ReadEnvVars(env); err == nil {
				if n, ok := ev.Get("name"); ok && n != "" {
					k.Name = n
				}
			} else if errors.Is(err, fs.ErrPermission) {
				k.Err = err
			}
		}
		out = append(out, k)
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Time.Equal(out[j].Time) {
			return out[i].Time.After(out[j].Time)
		}
		return out[i].Dir < out[j].Dir
	})
	return out
}

// DirSize is the size of the files under dir, each inode counted once,
// and whether every part of it could be read.
func DirSize(dir string) (size int64, complete bool) {
	type id struct{ dev, ino uint64 }
	seen := map[id]bool{}
	complete = true
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			complete = false
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			complete = false
			return nil
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
			k := id{uint64(st.Dev), uint64(st.Ino)}
			if seen[k] {
				return nil
			}
			seen[k] = true
		}
		size += info.Size()
		return nil
	})
	return size, complete
}
