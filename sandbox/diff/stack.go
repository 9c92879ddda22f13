package diff

import (
	"errors"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Stack is a directory as an overlay shows it from layers, top first:
// the upper directories of kept sessions (in either format Overlay
// reads) over a kept build directory. Stack{dir} is dir itself.
type Stack []string

// hidesIn reports what layer dir says of the entry rel below it: gone
// (a whiteout, or a non-directory on the way), or opaque (a directory on
// the way, or rel itself, hides every layer below).
func hidesIn(dir, rel string) (gone, opaque bool) {
	parts := strings.Split(rel, "/")
	for i := range parts {
		p := filepath.Join(dir, filepath.Join(parts[:i+1]...))
		if _, err := os.Lstat(filepath.Join(filepath.Dir(p), whiteoutPrefix+parts[i])); err == nil {
			return true, false
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return false, false // this layer says nothing of rel
		}
		if isWhiteout(fi) || (i < len(parts)-1 && !fi.IsDir()) {
			return true, false
		}
		if fi.IsDir() && isOpaque(p) {
			opaque = true
		}
	}
	return false, opaque
}

// find returns the host path of rel (the topmost layer's, for a
// directory) and whether it exists.
func (s Stack) find(rel string) (string, fs.FileInfo, error) {
	if len(s) == 1 || rel == "." {
		p := filepath.Join(s[0], rel)
		fi, err := os.Lstat(p)
		return p, fi, err
	}
	for i, l := range s {
		p := filepath.Join(l, rel)
		if i < len(s)-1 {
			gone, opaque := hidesIn(l, rel)
			if gone {
				return p, nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
			}
			if fi, err := os.Lstat(p); err == nil {
				return p, fi, nil
			} else if !errors.Is(err, fs.ErrNotExist) {
				return p, nil, err
			}
			if opaque {
				return p, nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
			}
			continue
		}
		fi, err := os.Lstat(p)
		return p, fi, err
	}
	return "", nil, fs.ErrNotExist
}

// path is the host path of rel, for reading its content.
func (s Stack) path(rel string) string {
	p, _, _ := s.find(rel)
	return p
}

// lstat is Lstat of rel in the merged view.
func (s Stack) lstat(rel string) (fs.FileInfo, error) {
	_, fi, err := s.find(rel)
	return fi, err
}

// names lists the directory rel of the merged view, sorted.
func (s Stack) names(rel string) ([]string, error) {
	if len(s) == 1 {
		return readNames(filepath.Join(s[0], rel))
	}
	seen := map[string]bool{}
	hidden := map[string]bool{}
	found := false
	for i, l := range s {
		last := i == len(s)-1
		var opaque bool
		if !last {
			var gone bool
			if gone, opaque = hidesIn(l, rel); gone {
				break
			}
		}
		p := filepath.Join(l, rel)
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() {
			if err == nil || opaque {
				break // a file here hides the directories below
			}
			continue
		}
		found = true
		ns, err := readNames(p)
		if err != nil {
			return nil, err
		}
		for _, n := range ns {
			if h, ok := strings.CutPrefix(n, whiteoutPrefix); ok && !last {
				hidden[h] = true
				continue
			}
			if hidden[n] {
				continue
			}
			if !last {
				if e, err := os.Lstat(filepath.Join(p, n)); err == nil && isWhiteout(e) {
					hidden[n] = true
					continue
				}
			}
			seen[n] = true
		}
		if opaque {
			break
		}
	}
	if !found {
		return nil, &fs.PathError{Op: "open", Path: path.Join(s[0], rel), Err: fs.ErrNotExist}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}
