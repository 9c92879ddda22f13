package nix

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// References are the store paths p refers to: `nix-store --query
// --references`.
func References(ctx context.Context, p string) ([]string, error) {
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nix-store", "--query", "--references", p)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("nix-store --query --references %s: %w: %s", p, err, strings.TrimSpace(stderr.String()))
	}
	return strings.Fields(string(out)), nil
}

// Realise builds or substitutes the outputs of the derivations drvs:
// `nix-store --realise`, its progress on stderr.
func Realise(ctx context.Context, drvs []string) error {
	if len(drvs) == 0 {
		return nil
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "nix-store", append([]string{"--realise"}, drvs...)...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nix-store --realise: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// FindFailedDerivation finds the derivation named name (NAME.drv in the
// store) whose build failed: of the .drv files with that name, the one
// whose outputs do not all exist; of several, the one whose build log
// Nix wrote nearest to near (the kept directory's last change), when
// near is set. Otherwise it fails, naming them.
func FindFailedDerivation(storeDir, name string, near time.Time) (string, error) {
	matches, err := filepath.Glob(filepath.Join(storeDir, "*-"+name+".drv"))
	if err != nil || len(matches) == 0 {
		return "", fmt.Errorf("no derivation %s/*-%s.drv", storeDir, name)
	}
	var failed []string
	for _, m := range matches {
		d, err := ReadDerivation(m)
		if err != nil {
			continue
		}
		for _, o := range d.Outputs {
			if _, err := os.Lstat(o.Path); o.Path != "" && err != nil {
				failed = append(failed, m)
				break
			}
		}
	}
	switch {
	case len(failed) == 1:
		return failed[0], nil
	case len(failed) == 0 && len(matches) == 1:
		return matches[0], nil
	case len(failed) == 0:
		failed = matches
	}
	sort.Strings(failed)
	if !near.IsZero() {
		best, bestD := "", time.Duration(math.MaxInt64)
		for _, m := range failed {
			t, ok := logTime(m)
			if !ok {
				continue
			}
			d := t.Sub(near)
			if d < 0 {
				d = -d
			}
			if d < bestD {
				best, bestD = m, d
			}
		}
		if best != "" && bestD < 10*time.Minute {
			return best, nil
		}
	}
	return "", fmt.Errorf("several derivations are named %s (%s); name the .drv", name, strings.Join(failed, " "))
}

// logTime is when Nix last wrote drv's build log
// (/nix/var/log/nix/drvs/XX/REST, bzip2'ed or not).
func logTime(drv string) (time.Time, bool) {
	base := filepath.Base(drv)
	if len(base) < 3 {
		return time.Time{}, false
	}
	p := filepath.Join(LogDir, "drvs", base[:2], base[2:])
	for _, f := range []string{p + ".bz2", p} {
		if st, err := os.Stat(f); err == nil {
			return st.ModTime(), true
		}
	}
	return time.Time{}, false
}
