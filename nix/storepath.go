package nix

import (
	"path"
	"strings"
)

// StoreDir is the only store directory nbs understands. Nix can be built
// with another one (NIX_STORE_DIR), but then no binary cache works and
// nixpkgs' bootstrap tools don't either, so nobody does.
const StoreDir = "/nix/store"

const (
	storePrefix = StoreDir + "/"
	// hashLen is the length of the hash part: 160 bits in nix-base32.
	hashLen = 32
	// maxNameLen is Nix's StorePath::MaxPathLen (src/libstore/path.cc):
	// the name is at most 211 bytes so the whole base name fits in 255.
	maxNameLen = 211
)

// IsStorePath reports whether p is exactly a store path:
// /nix/store/<32 nix-base32 characters>-<name>, with a name Nix would
// accept (1 to 211 characters from [A-Za-z0-9+._?=-]). A path below a store
// path, such as /nix/store/…-bash/bin/bash, is not one.
func IsStorePath(p string) bool {
	rest, ok := strings.CutPrefix(p, storePrefix)
	if !ok || len(rest) < hashLen+2 || rest[hashLen] != '-' {
		return false
	}
	for i := 0; i < hashLen; i++ {
		if !isBase32(rest[i]) {
			return false
		}
	}
	name := rest[hashLen+1:]
	if len(name) > maxNameLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		if !isNameChar(name[i]) {
			return false
		}
	}
	return true
}

// StorePathsIn returns every distinct store path mentioned in s, in order of
// first appearance. A mention is /nix/store/<hash>-<name> where the name
// runs as far as the characters Nix allows in one, so the store path is
// found inside "/nix/store/…-bash/bin/bash", "PATH=/nix/store/…-a/bin:…" or
// "-I/nix/store/…-zlib-dev/include". Mentions that could not be a store path
// (a bad hash, an empty or over-long name) are skipped.
//
// Nix finds references by scanning for the hash part alone; looking for the
// full prefix is stricter, but env-vars values are text a shell will
// expand, where a store path is only usable with its prefix.
func StorePathsIn(s string) []string {
	var paths []string
	seen := make(map[string]bool)
	for i := 0; ; {
		j := strings.Index(s[i:], storePrefix)
		if j < 0 {
			return paths
		}
		start := i + j
		end := start + len(storePrefix)
		for end < len(s) && isNameChar(s[end]) {
			end++
		}
		p := s[start:end]
		if IsStorePath(p) {
			if !seen[p] {
				seen[p] = true
				paths = append(paths, p)
			}
			i = end
		} else {
			// Advance one byte only: "/nix/store//nix/store/…" hides a
			// second prefix inside the first.
			i = start + 1
		}
	}
}

// isBase32 reports whether c is in Nix's base-32 alphabet
// ("0123456789abcdfghijklmnpqrsvwxyz": no e, o, t, u).
func isBase32(c byte) bool {
	switch {
	case c >= '0' && c <= '9':
		return true
	case c >= 'a' && c <= 'z':
		return c != 'e' && c != 'o' && c != 't' && c != 'u'
	}
	return false
}

// isNameChar reports whether c may appear in a store path name
// (checkName in Nix's src/libstore/path.cc).
func isNameChar(c byte) bool {
	switch {
	case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
		return true
	}
	switch c {
	case '+', '-', '.', '_', '?', '=':
		return true
	}
	return false
}

// DrvName is the name of a derivation from its store path:
// /nix/store/HASH-NAME.drv → NAME.
func DrvName(drv string) string {
	b := strings.TrimSuffix(path.Base(drv), ".drv")
	if i := strings.IndexByte(b, '-'); i >= 0 {
		b = b[i+1:]
	}
	return b
}

// StorePathOf is the store path p lies in (/nix/store/HASH-NAME for
// /nix/store/HASH-NAME/bin/x).
func StorePathOf(p string) string {
	rest := strings.TrimPrefix(p, StoreDir+"/")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	return StoreDir + "/" + rest
}
