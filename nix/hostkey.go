package nix

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// hostKey is everything that can change what `nix --version` and `nix
// show-config` print, short of the nix binary itself (hostEntry.Nix):
// the files Nix reads its settings from, the environment variables it
// looks at, and the facts of this machine and user some defaults come
// from. Equal keys mean equal answers.
type hostKey struct {
	// Files are the nix.conf files Nix reads and the files they
	// include, in the order read, with the ones that do not exist.
	Files []fileID
	// Env are the NAME=VALUE of the variables that change Nix's answer
	// (keyEnv), sorted.
	Env []string
	// UID: build-users-group and the home directory depend on it.
	UID int
	// Uname is the machine, kernel and host name; CPUs the processors
	// Go may use: system, extra-platforms and cores are detected.
	Uname string
	CPUs  int
}

// keyEnv reports whether the environment variable name can change Nix's
// settings: NIX_* (NIX_CONFIG, NIX_CONF_DIR, NIX_USER_CONF_FILES,
// NIX_REMOTE, NIX_PATH, NIX_SSL_CERT_FILE, …), the XDG directories and
// HOME the user's nix.conf is found with, SSL_CERT_FILE.
func keyEnv(name string) bool {
	switch name {
	case "HOME", "XDG_CONFIG_HOME", "XDG_CONFIG_DIRS", "SSL_CERT_FILE":
		return true
	}
	return strings.HasPrefix(name, "NIX_") || strings.HasPrefix(name, "_NIX_")
}

// maxConfFiles bounds the includes followed; a configuration with more
// (or an include cycle, which Nix itself never leaves) is not cached.
const maxConfFiles = 64

var errTooManyConfFiles = errors.New("nix.conf includes too many files")

// currentHostKey computes the hostKey of this process, reading the
// nix.conf files for their includes.
func currentHostKey() (hostKey, error) {
	k := hostKey{UID: os.Geteuid(), CPUs: runtime.NumCPU()}
	for _, kv := range os.Environ() {
		if name, _, _ := strings.Cut(kv, "="); keyEnv(name) {
			k.Env = append(k.Env, kv)
		}
	}
	sort.Strings(k.Env)
	var u unix.Utsname
	if err := unix.Uname(&u); err == nil {
		k.Uname = strings.Join([]string{unix.ByteSliceToString(u.Machine[:]), unix.ByteSliceToString(u.Release[:]), unix.ByteSliceToString(u.Nodename[:])}, " ")
	}
	var err error
	k.Files, err = confFiles(confRoots(), os.Getenv("NIX_CONFIG"))
	return k, err
}

// confRoots are the nix.conf files Nix reads, as loadConfFile and
// getUserConfigFiles in Nix's src/libstore/globals.cc find them:
// $NIX_CONF_DIR/nix.conf (default /etc/nix, the sysconfdir of every
// packaged Nix), then $NIX_USER_CONF_FILES (colon-separated) or else
// nix/nix.conf in $XDG_CONFIG_HOME (default ~/.config) and each of
// $XDG_CONFIG_DIRS (default /etc/xdg). Nix takes the home directory from
// the password database when HOME is not the user's (getHome in
// src/libutil/util.cc): both homes are listed then, which can only make
// a change be noticed that needed not be.
func confRoots() []string {
	confDir := os.Getenv("NIX_CONF_DIR")
	if confDir == "" {
		confDir = "/etc/nix"
	}
	roots := []string{filepath.Join(confDir, "nix.conf")}
	if files, ok := os.LookupEnv("NIX_USER_CONF_FILES"); ok {
		for _, f := range strings.Split(files, ":") {
			if f != "" {
				roots = append(roots, f)
			}
		}
		return roots
	}
	var dirs []string
	if d := os.Getenv("XDG_CONFIG_HOME"); d != "" {
		dirs = append(dirs, d)
	} else {
		homes := []string{os.Getenv("HOME")}
		if u, err := user.LookupId(fmt.Sprint(os.Geteuid())); err == nil && u.HomeDir != homes[0] {
			homes = append(homes, u.HomeDir)
		}
		for _, h := range homes {
			if h != "" {
				dirs = append(dirs, filepath.Join(h, ".config"))
			}
		}
	}
	xdg := os.Getenv("XDG_CONFIG_DIRS")
	if xdg == "" {
		xdg = "/etc/xdg"
	}
	for _, d := range strings.Split(xdg, ":") {
		if d != "" {
			dirs = append(dirs, d)
		}
	}
	for _, d := range dirs {
		roots = append(roots, filepath.Join(d, "nix", "nix.conf"))
	}
	return roots
}

// confFiles identifies the files roots name and, recursively, those they
// include; nixConfig (NIX_CONFIG) is configuration text whose relative
// includes are relative to the current directory, as Nix reads them.
func confFiles(roots []string, nixConfig string) ([]fileID, error) {
	var ids []fileID
	var walk func(path string, text []byte) error
	walk = func(path string, text []byte) error {
		for _, inc := range confIncludes(text) {
			p := inc
			if !filepath.IsAbs(p) {
				p = filepath.Join(filepath.Dir(path), p)
			}
			if err := visit(p, &ids, walk); err != nil {
				return err
			}
		}
		return nil
	}
	for _, r := range roots {
		if err := visit(r, &ids, walk); err != nil {
			return nil, err
		}
	}
	if nixConfig != "" {
		wd, err := os.Getwd()
		if err != nil {
			wd = "."
		}
		if err := walk(filepath.Join(wd, "NIX_CONFIG"), []byte(nixConfig)); err != nil {
			return nil, err
		}
	}
	return ids, nil
}

// visit identifies path, appends it to ids and walks its includes.
func visit(path string, ids *[]fileID, walk func(string, []byte) error) error {
	if len(*ids) >= maxConfFiles {
		return errTooManyConfFiles
	}
	id, err := identify(filepath.Clean(path))
	if err != nil {
		return err
	}
	*ids = append(*ids, id)
	if id.Missing {
		return nil
	}
	text, err := os.ReadFile(id.Path)
	if err != nil {
		// A directory or an unreadable file: Nix fails or skips it, the
		// same way every time while its identity holds.
		return nil
	}
	return walk(id.Path, text)
}

// confIncludes are the files a nix.conf text includes, in order: the
// lines `include PATH` and `!include PATH` as Nix's AbstractConfig::
// applyConfig (src/libutil/config.cc) reads them (a comment starts at #,
// words are separated by blanks, the line has exactly two words).
func confIncludes(text []byte) []string {
	var out []string
	for _, line := range strings.Split(string(text), "\n") {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		w := strings.FieldsFunc(line, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' })
		if len(w) == 2 && (w[0] == "include" || w[0] == "!include") {
			out = append(out, w[1])
		}
	}
	return out
}
