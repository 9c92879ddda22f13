package nix

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// LogDir is where Nix keeps build logs (NIX_LOG_DIR, default
// /nix/var/log/nix): drvs/XX/REST for the derivation /nix/store/XXREST,
// bzip2-compressed (.bz2) unless compress-build-log is off. Nix writes
// the log of a failed build too.
const LogDir = "/nix/var/log/nix"

// FailedPhase returns the phase a stdenv build of drvPath was in when
// its last build ended: the last "Running phase: NAME" line nixpkgs'
// setup.sh (showPhaseHeader) printed into the build log. "" when there
// is no log or no such line.
func FailedPhase(drvPath string) string {
	base := filepath.Base(drvPath)
	if len(base) < 3 {
		return ""
	}
	p := filepath.Join(LogDir, "drvs", base[:2], base[2:])
	var r io.Reader
	if f, err := os.Open(p + ".bz2"); err == nil {
		defer f.Close()
		r = bzip2.NewReader(f)
	} else if f, err := os.Open(p); err == nil {
		defer f.Close()
		r = f
	} else {
		return ""
	}
	return lastPhase(io.LimitReader(r, maxFileSize))
}

func lastPhase(r io.Reader) string {
	const header = "Running phase: "
	phase := ""
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if i := bytes.Index(line, []byte(header)); i >= 0 {
			name := strings.TrimSpace(string(line[i+len(header):]))
			if isName(name) {
				phase = name
			}
		}
	}
	return phase
}
