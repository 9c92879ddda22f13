package wrapper

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/fsnotify/fsnotify"

	"github.com/nix-build-shell/nbs/nix"
)

// watcher records the build directories that appear in the build-dir
// roots while nix-build runs: the tops nix.ParseBuildDir recognises
// (nix-build-NAME.drv-N up to Nix 2.29, nix-build-NAME.drv-PID-N in
// 2.30.0–2.31.1, nix-PID-N from 2.30.4, any name in Lix 2.94+'s b/).
//
// fsnotify sees them as they come; a listing of the roots before and after
// catches what it may miss (events still queued when it is closed, an
// inotify queue overflow), which is enough here since only directories
// still there at the end matter.
type watcher struct {
	log     *slog.Logger
	w       *fsnotify.Watcher
	dirs    []string        // the roots that could be watched
	before  map[string]bool // build directories there at the start
	done    chan struct{}
	once    sync.Once
	mu      sync.Mutex
	created []string
	seen    map[string]bool
}

// buildDirRoots are the places where Nix and Lix create build
// directories by default, as nbs list searches them.
func buildDirRoots() []string { return nix.DefaultKeptSearch().Roots() }

// isBuildTop reports whether p, an entry of a build-dir root, is named
// like a build directory's top.
func isBuildTop(p string) bool {
	b, ok := nix.ParseBuildDir(p)
	return ok && b.In == "."
}

// startWatch watches the existing dirs. It never fails: without inotify
// (or with none of the dirs) the fallback just finds nothing.
func startWatch(dirs []string, log *slog.Logger) *watcher {
	wa := &watcher{log: log, done: make(chan struct{}), seen: map[string]bool{}, before: map[string]bool{}}
	if len(dirs) == 0 {
		close(wa.done)
		return wa
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		log.Debug("watch build dirs", "err", err)
		close(wa.done)
		return wa
	}
	for _, d := range dirs {
		d = filepath.Clean(d)
		if err := w.Add(d); err != nil {
			log.Debug("watch build dir", "dir", d, "err", err)
			continue
		}
		wa.dirs = append(wa.dirs, d)
		for _, p := range listBuildDirs(d) {
			wa.before[p] = true
		}
	}
	if len(wa.dirs) == 0 {
		w.Close()
		close(wa.done)
		return wa
	}
	wa.w = w
	go wa.loop()
	return wa
}

func (wa *watcher) loop() {
	defer close(wa.done)
	for {
		select {
		case ev, ok := <-wa.w.Events:
			if !ok {
				return
			}
			if ev.Has(fsnotify.Create) && isBuildTop(ev.Name) {
				wa.add(ev.Name)
			}
		case err, ok := <-wa.w.Errors:
			if !ok {
				return
			}
			wa.log.Debug("watch build dirs", "err", err)
		}
	}
}

// stop ends the watch and returns the directories created meanwhile, in
// order. It may be called more than once.
func (wa *watcher) stop() []string {
	wa.once.Do(func() {
		if wa.w == nil {
			return
		}
		wa.w.Close()
		<-wa.done
		for _, d := range wa.dirs {
			for _, p := range listBuildDirs(d) {
				if !wa.before[p] {
					wa.add(p)
				}
			}
		}
	})
	<-wa.done
	wa.mu.Lock()
	defer wa.mu.Unlock()
	return append([]string(nil), wa.created...)
}

func (wa *watcher) add(p string) {
	wa.mu.Lock()
	defer wa.mu.Unlock()
	if !wa.seen[p] {
		wa.seen[p] = true
		wa.created = append(wa.created, p)
	}
}

// listBuildDirs lists what in dir is named like a build directory.
func listBuildDirs(dir string) []string {
	f, err := os.Open(dir)
	if err != nil {
		return nil
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	var out []string
	for _, n := range names {
		if p := filepath.Join(dir, n); isBuildTop(p) {
			out = append(out, p)
		}
	}
	return out
}

// crossCheck completes and checks the scanner's failures with what is on
// disk. Remote failures are left alone: their directories are on the
// builder, and a local directory of the same name belongs to another
// build.
//
//   - A local failure without a note gets the one new build directory
//     (created is what the watcher saw) that is still there and is its
//     own: named nix-build-NAME.drv-… for its NAME, or, for the nameless
//     nix-PID-N, holding build/env-vars (whose name= must then be NAME if
//     it can be read).
//   - A note of Nix 2.30+ names no derivation, so the scanner may have
//     given two nameless notes to the wrong two derivations (parallel
//     builds); where env-vars says so, their directories are swapped.
func crossCheck(fails []Failure, created []string, log *slog.Logger) {
	used := map[string]bool{}
	for _, f := range fails {
		if f.Builder == "" && f.KeptDir != "" {
			used[filepath.Clean(f.KeptDir)] = true
		}
	}
	for i := range fails {
		f := &fails[i]
		if f.Builder != "" || f.KeptDir != "" {
			continue
		}
		name := nix.DrvName(f.Drv)
		var found []string
		for _, top := range created {
			b, ok := nix.ParseBuildDir(top)
			if !ok {
				continue
			}
			kept, ok := keptIn(b)
			if !ok || used[kept] {
				continue
			}
			if b.Name != "" {
				if b.Name == name {
					found = append(found, kept)
				}
				continue
			}
			// A nameless top is taken when it holds env-vars whose
			// name, if it can be read, is NAME.
			dir := envDir(kept)
			if _, err := os.Stat(filepath.Join(dir, "env-vars")); err == nil {
				if n := keptName(dir); n == "" || n == name {
					found = append(found, kept)
				}
			}
		}
		if len(found) == 1 {
			log.Debug("build directory found by watching", "drv", f.Drv, "dir", found[0])
			f.KeptDir = found[0]
			used[found[0]] = true
		}
	}

	// Swap nameless notes that env-vars shows to be crossed.
	names := make([]string, len(fails))
	for i, f := range fails {
		if f.Builder == "" && f.KeptDir != "" && buildDirName(f.KeptDir) == "" {
			names[i] = keptName(envDir(f.KeptDir))
		}
	}
	for i := range fails {
		want := nix.DrvName(fails[i].Drv)
		if names[i] == "" || names[i] == want {
			continue
		}
		for j := range fails {
			if j != i && names[j] == want && names[j] != nix.DrvName(fails[j].Drv) {
				log.Debug("build directories swapped by env-vars", "a", fails[i].Drv, "b", fails[j].Drv)
				fails[i].KeptDir, fails[j].KeptDir = fails[j].KeptDir, fails[i].KeptDir
				names[i], names[j] = names[j], names[i]
				break
			}
		}
	}
}

// keptIn is the directory Nix would name in its note for the new top b:
// top/build when it has one (Nix 2.24+ sandboxed builds), else the top,
// which is also what Lix 2.94+ names; ok is false when the top is gone
// (the build succeeded, or was cleaned up).
func keptIn(b nix.BuildDir) (string, bool) {
	top := filepath.Clean(b.Top)
	if _, err := os.Lstat(top); err != nil {
		return "", false
	}
	if b.Layout == nix.LayoutLix {
		return top, true
	}
	in := filepath.Join(top, "build")
	if fi, err := os.Stat(in); err == nil && fi.IsDir() {
		return in, true
	} else if os.IsPermission(err) {
		// Root-owned 0700 top directory (Nix 2.24.0–2.24.6 and
		// backports): the build directory is inside, unreachable.
		return in, true
	}
	return top, true
}

// envDir is where env-vars is for the directory a note names: in it,
// except when that is the top of a layout whose build directory is never
// the top (Lix 2.94+'s note names TOP of TOP/b).
func envDir(kept string) string {
	if b, ok := nix.ParseBuildDir(kept); ok && b.In == "." && !slices.Contains(b.Layout.Inner(), ".") {
		return filepath.Join(kept, b.Layout.Inner()[0])
	}
	return kept
}

// keptName is the derivation name a kept build directory was built for,
// from its env-vars (declare -x name="…") or .attrs.json; "" if neither
// can be read.
func keptName(dir string) string {
	if f, err := os.Open(filepath.Join(dir, "env-vars")); err == nil {
		defer f.Close()
		sc := bufio.NewScanner(io.LimitReader(f, 4<<20))
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			if n, ok := envName(sc.Text()); ok {
				return n
			}
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, ".attrs.json")); err == nil {
		var attrs struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(b, &attrs) == nil {
			return attrs.Name
		}
	}
	return ""
}

// envName reads the name variable from one `export -p` line:
// `declare -x name="…"` (bash) or `export name=…` (POSIX mode).
func envName(line string) (string, bool) {
	var rest string
	var ok bool
	if rest, ok = strings.CutPrefix(line, "declare -x name="); !ok {
		if rest, ok = strings.CutPrefix(line, "export name="); !ok {
			return "", false
		}
	}
	if len(rest) >= 2 && rest[0] == '"' && rest[len(rest)-1] == '"' {
		var b strings.Builder
		in := rest[1 : len(rest)-1]
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) && strings.IndexByte("\\\"$`", in[i+1]) >= 0 {
				i++
			}
			b.WriteByte(in[i])
		}
		return b.String(), true
	}
	if strings.HasPrefix(rest, "$'") {
		if s, err := strconv.Unquote(`"` + strings.TrimSuffix(rest[2:], "'") + `"`); err == nil {
			return s, true
		}
	}
	return strings.Trim(rest, "'"), true
}
