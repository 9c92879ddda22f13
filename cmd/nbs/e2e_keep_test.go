//go:build linux

package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nix-build-shell/nbs/sandbox"
	"golang.org/x/sys/unix"
)

// keptPrefixes start the line where nbs shell --keep says what it kept:
// a copy of /build, or the changes a copy-on-write view made to it.
var keptPrefixes = []string{"nbs: kept the sandbox's copy of /build in ", "nbs: kept the sandbox's changes to /build in "}

// keptPath is the path nbs shell --keep printed in stderr, "" if none.
func keptPath(stderr string) string {
	for _, l := range strings.Split(stderr, "\n") {
		for _, p := range keptPrefixes {
			if rest, ok := strings.CutPrefix(l, p); ok {
				path, _, _ := strings.Cut(rest, " (over ")
				return path
			}
		}
	}
	return ""
}

// keptWorkDir is the work directory of what nbs shell --keep kept.
func keptWorkDir(kept string) string {
	if filepath.Base(kept) == "build" {
		return filepath.Dir(kept)
	}
	return kept
}

// keepScript changes /build in every way a session can: a deletion (a
// symlink, a fifo), an append, a rename, a new file, a directory removed
// and made again, a new directory, and a file changed and then changed
// back (no change, though it was copied up).
const keepScript = `set -e; cd /build/src
rm link fifo
echo more >> file.txt
mv run.sh run2.sh
echo new > new.txt
rm -r sub; mkdir sub; echo s > sub/s
mkdir -p empty/deep
cp -p /build/env-vars /tmp/env-vars; echo x >> /build/env-vars; cat /tmp/env-vars > /build/env-vars
`

// keepStat is nbs diff --stat after keepScript.
const keepStat = `A src/empty/deep/
D src/fifo
M src/file.txt
D src/link
A src/new.txt
D src/run.sh
A src/run2.sh
M src/sub/
A src/sub/s
`

// keepListing is /build/src entered again after keepScript.
const keepListing = "abs-link empty file.txt new.txt run2.sh sub | sub: s | hello more"

// TestKeepModes: --keep, nbs diff, the change summary, nbs list, nbs gc,
// entering the kept result again (also kept once more) and the clean-up
// after a SIGKILL work the same in every entry mode, as user, with sudo
// and as root. A view keeps only its changes (the upper directory, a
// deletion a whiteout) and a record of the kept directory below; the
// copy's outputs are the reference the views' must equal.
func TestKeepModes(t *testing.T) {
	rs := runners(t)
	kept := buildFailure(t, "fail")
	base, err := os.MkdirTemp("", "nbs-keep-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o755)
	copyKept := func(name string, owner *testUser) string {
		// Named as Nix names it: nbs gc takes nothing else.
		d := filepath.Join(base, "nix-build-"+name+".drv-0")
		if out, err := exec.Command("cp", "-a", kept, d).CombinedOutput(); err != nil {
			t.Fatalf("copy %s: %v %s", kept, err, out)
		}
		if owner != nil {
			chownTree(t, d, owner.uid, owner.gid)
		}
		return d
	}
	shared := copyKept("kept", nil)
	var reference struct{ summary, patch string }
	for _, r := range rs {
		t.Run(r.name, func(t *testing.T) {
			for _, mode := range entryModes {
				if mode == sandbox.EntryFUSE && r.user == nil {
					continue // root has the kernel's overlay
				}
				dir := shared
				if mode == sandbox.EntryOverlay && r.user != nil {
					// The caller's own kept directory: what an
					// unprivileged kernel overlay can show.
					dir = copyKept(r.name+"-own", r.user)
				}
				t.Run(mode, func(t *testing.T) {
					if mode == sandbox.EntryFUSE {
						requireFUSE(t, r.user)
					}
					before := treeSum(t, dir)
					tmp := privateTmp(t)
					env := append(append([]string(nil), r.env...), "NBS_ENTRY_MODE="+mode)
					nbs := func(args ...string) result { return keepNBS(t, r, tmp, env, args...) }

					res := nbs("shell", "--keep", dir, "sh", "-c", keepScript)
					k := keptPath(res.stderr)
					if res.code != 0 || k == "" {
						t.Fatalf("shell --keep: status %d\n%s", res.code, res.stderr)
					}
					summary := strings.SplitN(res.stderr, "\n", 2)[0]
					isView := mode != sandbox.EntryCopy
					if got := strings.HasPrefix(res.stderr[strings.Index(res.stderr, "nbs: kept"):], keptPrefixes[1]); got != isView {
						t.Errorf("%s: kept %s, want a view's changes: %v\n%s", mode, k, isView, res.stderr)
					}
					if isView {
						// Only what changed: no copy of the rest.
						if _, err := os.Lstat(filepath.Join(k, "upper/src/abs-link")); err == nil {
							t.Errorf("the kept changes hold an unchanged entry")
						}
					}

					st := nbs("diff", "--stat", dir)
					if st.code != 0 || st.stdout != keepStat {
						t.Errorf("nbs diff --stat: status %d\n%s\nwant\n%s\n%s", st.code, st.stdout, keepStat, st.stderr)
					}
					patch := nbs("diff", dir)
					if patch.code != 0 {
						t.Errorf("nbs diff: status %d: %s", patch.code, patch.stderr)
					}
					if named := nbs("diff", dir, k); named.stdout != patch.stdout {
						t.Errorf("nbs diff DIR KEPT differs from nbs diff DIR:\n%s\n%s", named.stdout, named.stderr)
					}
					if reference.patch == "" && mode == sandbox.EntryCopy {
						reference.summary, reference.patch = summary, patch.stdout
					}
					if reference.patch != "" {
						if summary != reference.summary {
							t.Errorf("change summary %q, copy mode's %q", summary, reference.summary)
						}
						if patch.stdout != reference.patch {
							t.Errorf("nbs diff:\n%s\ncopy mode's:\n%s", patch.stdout, reference.patch)
						}
					}

					// nbs list names it; entering it shows the kept
					// directory with the changes.
					if l := nbs("list"); !strings.Contains(l.stdout, k) {
						t.Errorf("nbs list does not name %s:\n%s", k, l.stdout)
					}
					show := `cd /build/src; echo $(ls) "|" sub: $(ls sub) "|" $(cat file.txt)`
					for _, m := range entryModes {
						if m == sandbox.EntryFUSE && r.user == nil {
							continue
						}
						again := keepNBS(t, r, tmp, append(append([]string(nil), r.env...), "NBS_ENTRY_MODE="+m), "shell", k, "sh", "-c", show)
						if again.code != 0 && strings.Contains(again.stderr, "not available") && (m != mode || busyBuildUser(again.stderr)) {
							continue // e.g. a fuse-overlayfs upper for the kernel's overlay: said so
						}
						if again.code != 0 || strings.TrimSpace(again.stdout) != keepListing {
							t.Errorf("nbs shell KEPT (%s): status %d\n%q\nwant %q\n%s", m, again.code, again.stdout, keepListing, again.stderr)
						}
					}
					// Kept again: a chain, compared with what it entered.
					// Plain root's build user may be busy now, which
					// only the automatic choice (a copy then) survives.
					chainEnv := env
					if r.buildUsers != nil {
						chainEnv = r.env
					}
					res = keepNBS(t, r, tmp, chainEnv, "shell", "--keep", k, "sh", "-c", "rm /build/src/new.txt; echo 3 > /build/src/third.txt")
					k2 := keptPath(res.stderr)
					if res.code != 0 || k2 == "" {
						t.Fatalf("shell --keep KEPT: status %d\n%s", res.code, res.stderr)
					}
					if st := nbs("diff", "--stat", k); st.stdout != "D src/new.txt\nA src/third.txt\n" {
						t.Errorf("nbs diff --stat KEPT: status %d\n%s%s", st.code, st.stdout, st.stderr)
					}
					if again := nbs("shell", k2, "sh", "-c", "cd /build/src; echo $(ls)"); strings.TrimSpace(again.stdout) != "abs-link empty file.txt run2.sh sub third.txt" {
						t.Errorf("nbs shell KEPT2: status %d %q\n%s", again.code, again.stdout, again.stderr)
					}

					// A kept directory changed since (here its mtime)
					// is not what the changes lie on: refused, and
					// accepted again once it is what it was.
					if isView {
						fi, err := os.Lstat(dir)
						if err != nil {
							t.Fatal(err)
						}
						os.Chtimes(dir, fi.ModTime().Add(time.Hour), fi.ModTime().Add(time.Hour))
						again := nbs("shell", k, "true")
						d := nbs("diff", dir, k)
						os.Chtimes(dir, fi.ModTime(), fi.ModTime())
						for _, res := range []result{again, d} {
							if res.code == 0 || !strings.Contains(res.stderr, "was changed since") || strings.Count(strings.TrimSpace(res.stderr), "\n") != 0 {
								t.Errorf("changes over a changed kept directory: status %d, stderr %q", res.code, res.stderr)
							}
						}
						if again := nbs("shell", k, "true"); again.code != 0 && !busyBuildUser(again.stderr) {
							t.Errorf("the kept directory as it was: status %d %s", again.code, again.stderr)
						}
					}

					// A record forged by the sudo caller, who owns it,
					// stacking root's home: refused, in every mode.
					if isView && r.user == nil && len(r.env) > 0 {
						keepForged(t, r, tmp, k)
					}

					// gc leaves what kept changes lie on.
					if isView {
						g := nbs("gc", "--dry-run", dir)
						if !strings.Contains(g.stdout, "kept") || !strings.Contains(g.stdout, "lie on it") {
							t.Errorf("gc of the kept directory under kept changes:\n%s%s", g.stdout, g.stderr)
						}
						g = nbs("gc", "--dry-run", k)
						if k2c, err := sandbox.ReadKeptCopy(k2); err == nil && k2c.View != nil && !strings.Contains(g.stdout, "lie on it") {
							t.Errorf("gc of kept changes under kept changes:\n%s%s", g.stdout, g.stderr)
						}
					}
					if g := nbs("gc", k2, k); g.code != 0 || strings.Count(g.stdout, "removed") != 2 {
						t.Errorf("gc of the kept results: status %d\n%s%s", g.code, g.stdout, g.stderr)
					}
					for _, p := range []string{k, k2} {
						if _, err := os.Lstat(keptWorkDir(p)); err == nil {
							t.Errorf("gc left %s", keptWorkDir(p))
						}
					}

					// SIGKILL of nbs: what was not kept goes with the
					// next run.
					keepKilled(t, r, tmp, env, dir)
					if after := treeSum(t, dir); after != before {
						t.Errorf("ESCAPE: the kept directory changed:\n%s\nwas\n%s", after, before)
					}
				})
			}
		})
	}
}

// busyBuildUser: nbs said that kept changes belong to another user than
// the sandbox's (as plain root, the build user who made them is busy).
func busyBuildUser(stderr string) bool {
	return strings.Contains(stderr, "not to the sandbox user")
}

// keepNBS runs nbs as r in tmp.
func keepNBS(t *testing.T, r runner, tmp string, env []string, args ...string) result {
	t.Helper()
	cmd := keepCmd(r, tmp, env, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	code := escStatus(t, cmd.Run())
	return result{stdout: stdout.String(), stderr: stderr.String(), code: code, tmp: tmp}
}

func keepCmd(r runner, tmp string, env []string, args ...string) *exec.Cmd {
	argv := append([]string{nbsBin}, args...)
	home := "/nonexistent"
	if r.user != nil {
		argv = append([]string{"setpriv", "--reuid=" + strconv.Itoa(r.user.uid), "--regid=" + strconv.Itoa(r.user.gid), "--init-groups", "--"}, argv...)
		home = r.user.home
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "TMPDIR=" + tmp, "HOME=" + home}, env...)
	return cmd
}

// keepKilled kills nbs shell --keep with SIGKILL while its sandbox runs:
// nothing is kept (the record is written only when the session ends),
// and the next nbs in the same TMPDIR removes the work directory.
func keepKilled(t *testing.T, r runner, tmp string, env []string, dir string) {
	t.Helper()
	cmd := keepCmd(r, tmp, env, "shell", "--keep", dir, "sh", "-c", "echo changed >> /build/src/file.txt; echo started; exec sleep 300")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len("started\n"))
	if _, err := io.ReadFull(out, buf); err != nil || string(buf) != "started\n" {
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatalf("nbs shell --keep: read %q, %v", buf, err)
	}
	// setpriv execs nbs: the pid is nbs's.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if got := tmpEntries(tmp); len(got) != 1 {
		t.Fatalf("after SIGKILL TMPDIR holds %v, want the killed session's work directory", got)
	}
	if res := keepNBS(t, r, tmp, env, "shell", dir, "true"); res.code != 0 {
		t.Fatalf("next nbs: %d %s", res.code, res.stderr)
	}
	// The sandbox's processes end with nbs (they die with it, but the
	// kernel may take a moment to tear them down).
	if !eventually(func() bool { return len(tmpEntries(tmp)) == 0 }) {
		t.Errorf("after the next run TMPDIR holds %v", tmpEntries(tmp))
	}
	if l := keepNBS(t, r, tmp, env, "list"); strings.Contains(l.stdout, tmp) {
		t.Errorf("nbs list names a killed session's directory:\n%s", l.stdout)
	}
}

// keepForged puts /root (with its real identity) into the record of the
// kept changes k, as their owner could, and enters them with sudo in
// each mode: nbs must refuse to show a directory that is not the
// owner's.
func keepForged(t *testing.T, r runner, tmp, k string) {
	t.Helper()
	rec := filepath.Join(k, ".view")
	orig, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	defer os.WriteFile(rec, orig, 0o644)
	var st unix.Stat_t
	if err := unix.Lstat("/root", &st); err != nil {
		t.Skipf("no /root: %v", err)
	}
	lines := strings.SplitN(string(orig), "\n", 2)
	forged := fmt.Sprintf("%s\nlayer kernel %d %d %d /root\n%s", lines[0], st.Dev, st.Ino, st.Mtim.Nano(), lines[1])
	if err := os.WriteFile(rec, []byte(forged), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, m := range entryModes {
		if m == sandbox.EntryFUSE {
			continue
		}
		res := keepNBS(t, r, tmp, append(append([]string(nil), r.env...), "NBS_ENTRY_MODE="+m), "shell", k, "ls", "/build")
		if res.code == 0 || !strings.Contains(res.stderr, "/root is not a directory of") {
			t.Errorf("ESCAPE: a forged record stacks /root (%s): status %d\n%s%s", m, res.code, res.stdout, res.stderr)
		}
	}
}
