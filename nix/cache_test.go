package nix

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestUserCacheLocation(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", "")
	if c := UserCache(); c.dir != filepath.Join(home, ".cache", "nbs") {
		t.Errorf("HOME=%s: cache in %q (%s)", home, c.dir, c.why)
	}
	xdg := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", xdg)
	if c := UserCache(); c.dir != filepath.Join(xdg, "nbs") {
		t.Errorf("XDG_CACHE_HOME=%s: cache in %q (%s)", xdg, c.dir, c.why)
	}
	// A relative XDG_CACHE_HOME is ignored, as the specification says.
	t.Setenv("XDG_CACHE_HOME", "rel")
	if c := UserCache(); c.dir != filepath.Join(home, ".cache", "nbs") {
		t.Errorf("XDG_CACHE_HOME=rel: cache in %q (%s)", c.dir, c.why)
	}
	t.Setenv("XDG_CACHE_HOME", "")
	t.Setenv("HOME", filepath.Join(home, "missing"))
	if c := UserCache(); c.dir != "" || !strings.Contains(c.why, "missing") {
		t.Errorf("missing HOME: cache in %q (%s)", c.dir, c.why)
	}
}

// TestUserCacheNotOurs: root under sudo with the caller's HOME has no
// cache, rather than root's files in the caller's home.
func TestUserCacheNotOurs(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a directory of another user")
	}
	home := t.TempDir()
	if err := os.Chown(home, 12345, 12345); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HOME", home)
	t.Setenv("XDG_CACHE_HOME", "")
	c := UserCache()
	if c.dir != "" || !strings.Contains(c.why, "uid 0") {
		t.Fatalf("HOME of uid 12345 as root: cache in %q (%s)", c.dir, c.why)
	}
	if err := c.store("x", struct{ Format int }{cacheFormat}); err == nil {
		t.Error("store without a cache succeeded")
	}
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("wrote into another user's home: %v", entries)
	}
}

func TestCacheStoreLoad(t *testing.T) {
	c := NewCache(filepath.Join(t.TempDir(), "a", "nbs"))
	type entry struct {
		Format int
		Value  string
	}
	var e entry
	if err := c.load("e.json", &e); err == nil || !strings.Contains(err.Error(), "not cached yet") {
		t.Errorf("load before store: %v", err)
	}
	if err := c.store("e.json", entry{cacheFormat, "v"}); err != nil {
		t.Fatal(err)
	}
	if err := c.load("e.json", &e); err != nil || e.Value != "v" {
		t.Fatalf("load = %+v, %v", e, err)
	}
	info, err := os.Stat(c.path("e.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, %v; want 0600", info.Mode(), err)
	}
	if info, err := os.Stat(c.dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("cache directory mode %v, %v; want 0700", info.Mode(), err)
	}
	if entries, _ := os.ReadDir(c.dir); len(entries) != 1 {
		t.Errorf("temporary files left: %v", entries)
	}

	bad := map[string]func(p string){
		"corrupt":         func(p string) { os.WriteFile(p, []byte(`{"Format":1,"Value":`), 0o600) },
		"other format":    func(p string) { os.WriteFile(p, []byte(`{"Format":99,"Value":"v"}`), 0o600) },
		"unknown field":   func(p string) { os.WriteFile(p, []byte(`{"Format":1,"Value":"v","X":1}`), 0o600) },
		"trailing data":   func(p string) { os.WriteFile(p, []byte(`{"Format":1,"Value":"v"} x`), 0o600) },
		"group-writable":  func(p string) { os.WriteFile(p, []byte(`{"Format":1,"Value":"v"}`), 0o600); os.Chmod(p, 0o620) },
		"symlink":         func(p string) { os.WriteFile(p+".t", []byte(`{"Format":1,"Value":"v"}`), 0o600); os.Symlink(p+".t", p) },
		"directory":       func(p string) { os.Mkdir(p, 0o700) },
		"fifo (no block)": func(p string) { mkfifo(t, p) },
	}
	for name, make := range bad {
		p := c.path(name)
		make(p)
		var e entry
		if err := c.load(name, &e); err == nil {
			t.Errorf("%s: load succeeded: %+v", name, e)
		}
	}
}

func TestCachePrune(t *testing.T) {
	c := NewCache(t.TempDir())
	old := time.Now().Add(-time.Hour)
	for i := range 5 {
		name := "closure-" + string(rune('a'+i))
		if err := c.store(name, struct{ Format int }{cacheFormat}); err != nil {
			t.Fatal(err)
		}
		tm := old.Add(time.Duration(i) * time.Minute)
		os.Chtimes(c.path(name), tm, tm)
	}
	c.touch("closure-a") // the oldest, used just now
	os.WriteFile(c.path(".tmp-x-1"), nil, 0o600)
	stale := c.path(".tmp-y-2")
	os.WriteFile(stale, nil, 0o600)
	os.Chtimes(stale, old.Add(-time.Hour), old.Add(-time.Hour))
	os.WriteFile(c.path("nix-host.json"), nil, 0o600)
	c.prune("closure-", 2)
	var left []string
	entries, _ := os.ReadDir(c.dir)
	for _, e := range entries {
		left = append(left, e.Name())
	}
	if got, want := strings.Join(left, " "), ".tmp-x-1 closure-a closure-e nix-host.json"; got != want {
		t.Errorf("after prune: %s; want %s", got, want)
	}
}

func TestConfIncludes(t *testing.T) {
	text := "# include commented\nsandbox = true\ninclude a.conf\n  !include   /abs/b.conf # comment\ninclude\ninclude x y\nincluded = z\n\tinclude\tc.conf\r\n"
	got := strings.Join(confIncludes([]byte(text)), " ")
	if want := "a.conf /abs/b.conf c.conf"; got != want {
		t.Errorf("confIncludes = %q; want %q", got, want)
	}
}

func TestConfFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/nix.conf", "include sub/a.conf\n!include missing.conf\n")
	write("etc/sub/a.conf", "include "+filepath.Join(dir, "b.conf")+"\n")
	write("b.conf", "x = 1\n")
	ids, err := confFiles([]string{filepath.Join(dir, "etc/nix.conf"), filepath.Join(dir, "user.conf")}, "include "+filepath.Join(dir, "env.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, id := range ids {
		p, _ := filepath.Rel(dir, id.Path)
		if id.Missing {
			p += " (missing)"
		}
		got = append(got, p)
	}
	want := "etc/nix.conf etc/sub/a.conf b.conf etc/missing.conf (missing) user.conf (missing) env.conf (missing)"
	if strings.Join(got, " ") != want {
		t.Errorf("confFiles = %s\nwant %s", strings.Join(got, " "), want)
	}

	// A cycle is not followed forever.
	write("loop.conf", "include loop.conf\n")
	if _, err := confFiles([]string{filepath.Join(dir, "loop.conf")}, ""); err != errTooManyConfFiles {
		t.Errorf("include cycle: %v", err)
	}
}

// fakeNix puts a nix and a nix-store on PATH that log each call to
// calls and print the given answers.
func fakeNix(t *testing.T, version, settings, requisites string) (bin, calls string) {
	t.Helper()
	bin = t.TempDir()
	calls = filepath.Join(bin, "calls")
	for name, out := range map[string]string{
		"nix":       `case "$*" in --version) echo "nix (Nix) ` + version + `";; *show-config|*config\ show) cat <<'EOF'` + "\n" + settings + "EOF\n;; esac",
		"nix-store": "cat <<'EOF'\n" + requisites + "EOF",
	} {
		script := "#!/bin/sh\necho \"" + name + " $*\" >>" + calls + "\n" + out + "\n"
		if err := os.WriteFile(filepath.Join(bin, name), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+":"+os.Getenv("PATH"))
	return bin, calls
}

// takeCalls returns the calls logged since the last time and forgets them.
func takeCalls(t *testing.T, calls string) string {
	t.Helper()
	b, _ := os.ReadFile(calls)
	os.Remove(calls)
	return strings.TrimSpace(string(b))
}

func TestReadHostCache(t *testing.T) {
	bin, calls := fakeNix(t, "2.8.0", "sandbox = true\nsandbox-paths = /bin/sh\n", "")
	conf := t.TempDir()
	t.Setenv("NIX_CONF_DIR", conf)
	t.Setenv("NIX_USER_CONF_FILES", filepath.Join(conf, "user.conf"))
	t.Setenv("NIX_CONFIG", "")
	os.WriteFile(filepath.Join(conf, "nix.conf"), []byte("include inc.conf\n"), 0o644)
	c := NewCache(t.TempDir())
	ctx := context.Background()

	read := func(what, wantCalls string, wantCached bool) {
		t.Helper()
		h, err := c.ReadHost(ctx)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if h.Version != (Version{2, 8, 0}) || h.Settings["sandbox-paths"] != "/bin/sh" {
			t.Errorf("%s: %+v", what, h)
		}
		if got := takeCalls(t, calls); got != wantCalls {
			t.Errorf("%s: nix ran as %q; want %q", what, got, wantCalls)
		}
		if cached := strings.HasPrefix(h.From, "cache "); cached != wantCached {
			t.Errorf("%s: from %q", what, h.From)
		}
	}
	const both = "nix --version\nnix --extra-experimental-features nix-command show-config"
	const settings = "nix --extra-experimental-features nix-command show-config"
	read("first", both, false)
	read("second", "", true)
	read("third", "", true)

	// Anything nix's answer depends on asks it again; the same binary's
	// version is known.
	os.WriteFile(filepath.Join(conf, "user.conf"), []byte("sandbox = true\n"), 0o644)
	read("user.conf created", settings, false)
	read("after user.conf", "", true)
	os.WriteFile(filepath.Join(conf, "inc.conf"), []byte("x = 1\n"), 0o644)
	read("included file created", settings, false)
	os.WriteFile(filepath.Join(conf, "inc.conf"), []byte("x = 22\n"), 0o644)
	read("included file changed", settings, false)
	t.Setenv("NIX_CONFIG", "sandbox = false")
	read("NIX_CONFIG", settings, false)
	read("same NIX_CONFIG", "", true)
	t.Setenv("NIX_REMOTE", "daemon")
	read("NIX_REMOTE", settings, false)
	t.Setenv("NIX_CONF_DIR", t.TempDir())
	read("NIX_CONF_DIR", settings, false)

	// Another nix binary: both again.
	script, _ := os.ReadFile(filepath.Join(bin, "nix"))
	os.Remove(filepath.Join(bin, "nix"))
	os.WriteFile(filepath.Join(bin, "nix"), script, 0o755)
	read("new nix binary", both, false)
	read("after the new binary", "", true)

	// A corrupt cache file is a miss, and is replaced.
	os.WriteFile(c.path(hostCacheFile), []byte("{garbage"), 0o600)
	read("corrupt cache", both, false)
	read("after the corrupt cache", "", true)

	// Without a cache nix runs every time.
	nc := &Cache{why: "none here"}
	for range 2 {
		if h, err := nc.ReadHost(ctx); err != nil || !strings.Contains(h.From, "none here") {
			t.Errorf("no cache: %+v, %v", h, err)
		}
		if got := takeCalls(t, calls); got != both {
			t.Errorf("no cache: nix ran as %q", got)
		}
	}
}

func TestReadHostNewCLI(t *testing.T) {
	_, calls := fakeNix(t, "2.34.1", "sandbox = true\n", "")
	c := NewCache(t.TempDir())
	if _, err := c.ReadHost(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := takeCalls(t, calls); got != "nix --version\nnix --extra-experimental-features nix-command config show" {
		t.Errorf("nix ran as %q", got)
	}
}

const (
	pathA = "/nix/store/0mgbgmj5jiq5098d3n30fjaa83ppzd3z-a"
	pathB = "/nix/store/14ki8mgbgmj5jiq5098d3n30fjaa83pp-b"
	pathC = "/nix/store/gsmjp5dzhqrpk3ffx5p6d567nx3xzsag-c"
)

func TestRequisitesCache(t *testing.T) {
	_, calls := fakeNix(t, "2.8.0", "", pathC+"\n"+pathA+"\n"+pathB+"\n")
	gone := map[string]bool{}
	c := NewCache(t.TempDir())
	c.exists = func(p string) bool { return !gone[p] }
	ctx := context.Background()
	query := func(what string, roots []string, wantCached bool) {
		t.Helper()
		closure, from, err := c.Requisites(ctx, roots)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if got := strings.Join(closure, " "); got != pathA+" "+pathB+" "+pathC {
			t.Errorf("%s: closure %s", what, got)
		}
		got := takeCalls(t, calls)
		if cached := got == ""; cached != wantCached || strings.HasPrefix(from, "cache ") != wantCached {
			t.Errorf("%s: nix-store ran as %q, from %q; want cached %v", what, got, from, wantCached)
		}
	}
	query("first", []string{pathB, pathA}, false)
	query("second", []string{pathB, pathA}, true)
	query("same set, other order, duplicates", []string{pathA, pathB, pathA}, true)
	query("other set", []string{pathA}, false)
	gone[pathC] = true
	query("garbage-collected path", []string{pathB, pathA}, false)
	delete(gone, pathC)
	query("after the collection", []string{pathB, pathA}, true)

	if closure, _, err := c.Requisites(ctx, nil); err != nil || closure != nil {
		t.Errorf("no paths: %v, %v", closure, err)
	}
}

func TestClosureCheck(t *testing.T) {
	exists := func(string) bool { return true }
	roots := []string{pathA}
	cases := map[string]closureEntry{
		"other roots":       {Roots: []string{pathB}, Closure: []string{pathA, pathB}},
		"root missing":      {Roots: roots, Closure: []string{pathB}},
		"unsorted":          {Roots: roots, Closure: []string{pathB, pathA}},
		"not a store path":  {Roots: roots, Closure: []string{"/etc/shadow", pathA}},
		"path below a path": {Roots: roots, Closure: []string{pathA, pathA + "/bin"}},
	}
	for name, e := range cases {
		if err := e.check(roots, exists); err == nil {
			t.Errorf("%s: check passed", name)
		}
	}
	good := closureEntry{Roots: roots, Closure: []string{pathA, pathB}}
	if err := good.check(roots, exists); err != nil {
		t.Errorf("good entry: %v", err)
	}
}

func TestFindDerivationCache(t *testing.T) {
	store := t.TempDir()
	drv, err := os.ReadFile("testdata/demo-fail.drv")
	if err != nil {
		t.Fatal(err)
	}
	out := "/nix/store/hwijnk91dzpjnh2ikywrj5jp1kvbgj55-demo-fail"
	// Other derivations of the same name, one of them not parseable.
	os.WriteFile(filepath.Join(store, "00000000000000000000000000000000-demo-fail.drv"), []byte("Derive(garbage"), 0o444)
	os.WriteFile(filepath.Join(store, "11111111111111111111111111111111-demo-fail.drv"), []byte(strings.ReplaceAll(string(drv), "hwijnk91", "aaaaaaaa")), 0o444)
	want := filepath.Join(store, "99999999999999999999999999999999-demo-fail.drv")
	os.WriteFile(want, drv, 0o444)
	c := NewCache(t.TempDir())
	for _, what := range []string{"first", "cached"} {
		got, d, err := c.FindDerivation(store, "demo-fail", out)
		if err != nil || got != want || !d.hasOutput(out) {
			t.Fatalf("%s: %s, %v", what, got, err)
		}
	}
	entries, _ := os.ReadDir(c.dir)
	if len(entries) != 1 || !strings.HasPrefix(entries[0].Name(), deriverPrefix) {
		t.Fatalf("cache holds %v", entries)
	}
	// A cached answer is checked: a derivation gone is searched again.
	os.Remove(want)
	if _, _, err := c.FindDerivation(store, "demo-fail", out); err == nil {
		t.Error("found a removed derivation")
	}
	// An answer for another name is not taken.
	os.WriteFile(want, drv, 0o444)
	c.store(entries[0].Name(), deriverEntry{Format: cacheFormat, Out: out, Drv: filepath.Join(store, "11111111111111111111111111111111-demo-fail.drv")})
	if got, _, err := c.FindDerivation(store, "demo-fail", out); err != nil || got != want {
		t.Errorf("after a wrong entry: %s, %v", got, err)
	}
}

// FuzzCacheEntries: whatever a cache file holds, reading it never
// panics, and what passes the checks is what they promise.
func FuzzCacheEntries(f *testing.F) {
	f.Add([]byte(`{"Format":1,"Roots":["` + pathA + `"],"Closure":["` + pathA + `","` + pathB + `"]}`))
	f.Add([]byte(`{"Format":1,"Nix":{"Path":"/usr/bin/nix","Dev":1,"Ino":2},"Key":{"Files":[],"Env":["HOME=/"],"UID":0},"Version":{"Major":2,"Minor":8},"Settings":{"sandbox":"true"}}`))
	f.Add([]byte(`{"Format":1,"Out":"` + pathA + `","Drv":"/nix/store/x.drv"}`))
	f.Add([]byte(`{"Format":1,"Closure":null}`))
	f.Add([]byte(`[]`))
	dir := f.TempDir()
	c := NewCache(dir)
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(c.path("f.json"), b, 0o600); err != nil {
			t.Fatal(err)
		}
		var h hostEntry
		if c.load("f.json", &h) == nil && h.Format != cacheFormat {
			t.Errorf("host entry of format %d accepted", h.Format)
		}
		var d deriverEntry
		c.load("f.json", &d)
		var e closureEntry
		if c.load("f.json", &e) == nil && e.check([]string{pathA}, func(string) bool { return true }) == nil {
			for _, p := range e.Closure {
				if !IsStorePath(p) {
					t.Errorf("closure with %q accepted", p)
				}
			}
		}
	})
}

func FuzzConfIncludes(f *testing.F) {
	f.Add([]byte("include a\n!include /b # c\n"))
	f.Add([]byte("include\x00x y\r\n#include z"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, p := range confIncludes(b) {
			if p == "" || strings.ContainsAny(p, " \t\n#") {
				t.Errorf("include %q", p)
			}
		}
	})
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := unix.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
}
