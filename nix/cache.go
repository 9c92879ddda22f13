package nix

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Cache holds answers Nix would give again, so that nbs need not start a
// Nix process to learn them: the version and settings of the installed
// nix (valid while the binary and every nix.conf it reads are the same
// files, see hostKey) and the closures of sets of store paths (valid while
// the paths exist: a store path's references never change).
//
// One directory per user, $XDG_CACHE_HOME/nbs or ~/.cache/nbs, mode 0700,
// one JSON file per answer, each written to a temporary file and renamed
// into place. A file that cannot be read or makes no sense is a miss;
// nothing in it is trusted beyond what its checks allow.
type Cache struct {
	// dir is the cache directory; "" when there is none (why says why).
	dir, why string
	// exists says whether a store path is still there (tests stand in
	// for the store).
	exists func(string) bool
}

// cacheFormat is written into every file; another one is a miss.
const cacheFormat = 1

// maxCacheFile bounds what is read of a cache file.
const maxCacheFile = 16 << 20

// maxCached is how many files of a kind (closures, derivers) the cache
// keeps: each is at most a few kilobytes, one per derivation entered
// (and set of --with tools).
const maxCached = 256

// cacheKey names the cache file of what s identifies.
func cacheKey(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:16]) + ".json"
}

// UserCache is the cache of the user nbs runs as, in $XDG_CACHE_HOME/nbs
// or $HOME/.cache/nbs. That directory (XDG_CACHE_HOME, or HOME) must
// exist and belong to the user: root under sudo, with HOME still the
// caller's, has no cache rather than write root's files into the caller's
// home (sudo's default, a HOME of root's own, gives root its own cache).
func UserCache() *Cache {
	base, sub := os.Getenv("XDG_CACHE_HOME"), "nbs"
	what := "XDG_CACHE_HOME"
	// The XDG base directory specification ignores a relative value.
	if !filepath.IsAbs(base) {
		base, sub, what = os.Getenv("HOME"), filepath.Join(".cache", "nbs"), "HOME"
	}
	if !filepath.IsAbs(base) {
		return &Cache{why: "no HOME"}
	}
	var st unix.Stat_t
	if err := unix.Stat(base, &st); err != nil {
		return &Cache{why: fmt.Sprintf("%s %s: %v", what, base, err)}
	}
	if uid := os.Geteuid(); int(st.Uid) != uid || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return &Cache{why: fmt.Sprintf("%s %s is not a directory of uid %d", what, base, uid)}
	}
	return NewCache(filepath.Join(base, sub))
}

// NewCache is a cache in dir, created when the first answer is stored.
func NewCache(dir string) *Cache { return &Cache{dir: dir, exists: lexists} }

func lexists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func (c *Cache) path(name string) string { return filepath.Join(c.dir, name) }

// load reads the cache file name into v. It fails for a file that is
// missing, not a regular file of ours, or not the JSON of the current
// format; the caller still checks what v says.
func (c *Cache) load(name string, v any) error {
	if c.dir == "" {
		return errors.New(c.why)
	}
	f, err := os.OpenFile(c.path(name), os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("not cached yet")
	} else if err != nil {
		return err
	}
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		return fmt.Errorf("%s: not a private file of ours", c.path(name))
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCacheFile+1))
	if err != nil {
		return err
	}
	if len(b) > maxCacheFile {
		return fmt.Errorf("%s: too big", c.path(name))
	}
	return decodeEntry(b, v)
}

// decodeEntry reads one cache file's JSON into v: an object whose Format
// is cacheFormat, nothing after it.
func decodeEntry(b []byte, v any) error {
	var head struct{ Format int }
	if err := json.Unmarshal(b, &head); err != nil {
		return err
	}
	if head.Format != cacheFormat {
		return fmt.Errorf("cache format %d, want %d", head.Format, cacheFormat)
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

// store writes v as the cache file name, atomically: readers see the old
// file or the new one, never part of one.
func (c *Cache) store(name string, v any) error {
	if c.dir == "" {
		return errors.New(c.why)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Lstat(c.dir, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("cache directory %s is not a directory of ours", c.dir)
	}
	f, err := os.CreateTemp(c.dir, ".tmp-"+name+"-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), c.path(name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write cache file %s: %w", c.path(name), err)
	}
	return nil
}

// prune keeps the newest keep files whose names start with prefix (by
// modification time: a hit touches its file) and the temporary files of
// the last hour (a writer may be busy with one), and removes the rest.
func (c *Cache) prune(prefix string, keep int) {
	entries, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type file struct {
		name string
		mod  time.Time
	}
	var files []file
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() {
			continue
		}
		switch {
		case strings.HasPrefix(e.Name(), ".tmp-"):
			if time.Since(info.ModTime()) > time.Hour {
				os.Remove(c.path(e.Name()))
			}
		case strings.HasPrefix(e.Name(), prefix):
			files = append(files, file{e.Name(), info.ModTime()})
		}
	}
	if len(files) <= keep {
		return
	}
	sort.Slice(files, func(i, j int) bool { return files[i].mod.After(files[j].mod) })
	for _, f := range files[keep:] {
		os.Remove(c.path(f.name))
	}
}

// touch marks the cache file name as just used, for prune.
func (c *Cache) touch(name string) {
	now := time.Now()
	os.Chtimes(c.path(name), now, now)
}

// fileID identifies a file's content without reading it: the same path,
// inode, size, modification and change time mean the same bytes (a
// rewrite changes the times, a replacement the inode). Missing records a
// path that did not exist, which must stay so.
type fileID struct {
	Path     string
	Dev, Ino uint64
	Size     int64
	Mtime    int64 // ns
	Ctime    int64 // ns
	Missing  bool  `json:",omitempty"`
}

// identify is the fileID of path, following symlinks as Nix does when it
// reads the file; a path that cannot be stat'ed for another reason than
// not existing is an error.
func identify(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENOTDIR) {
			return fileID{Path: path, Missing: true}, nil
		}
		return fileID{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return fileID{
		Path:  path,
		Dev:   uint64(st.Dev),
		Ino:   uint64(st.Ino),
		Size:  st.Size,
		Mtime: st.Mtim.Nano(),
		Ctime: st.Ctim.Nano(),
	}, nil
}
