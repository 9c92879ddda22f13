package sandbox

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/nix-build-shell/nbs/nix"
	"golang.org/x/sys/unix"
)

// workspace is the sandbox's private state on the host: a work directory
// (see workDir) with the copy of the kept directory in it, and the store
// paths the sandbox shows.
type workspace struct {
	dir *workDir
	// chown: see sandboxUser.chown.
	chown *Owner
	// notCopied are the entries of the kept directory the caller could
	// not read: missing from the copy, not removed by the command.
	notCopied []string
	// storePaths is the store view (storeView); nil shows the whole
	// store, read-only.
	storePaths []string
	// view is the copy-on-write view /build is instead of a copy; nil
	// for a copy. files are what the child gets for it; server is the
	// FUSE server (fuse-overlayfs) once started.
	view       *viewSpec
	files      *viewFiles
	fuseServer func() *exec.Cmd
	// lower is what /build lies on, top first (kept changes entered
	// again, then the kept directory), as the session started: the
	// record a view kept with --keep leaves (KeptView).
	lower []Layer
	// beforeCopy, when set, runs before enter copies the kept
	// directory: a copy may take minutes, and a sandbox that cannot
	// start is better known before them.
	beforeCopy func() error
}

// openWorkspace creates a work directory in $TMPDIR for u, first
// removing the ones earlier nbs left behind when they were killed. With
// beside (the kept directory, for modeNoNamespaces) it holds only
// build/ and goes next to beside, so that the copy sits beside the
// original; in $TMPDIR where nbs may not create it there.
func openWorkspace(u *sandboxUser, beside string, log *slog.Logger) (*workspace, error) {
	var bases []string
	if beside != "" {
		bases = append(bases, filepath.Dir(beside))
	}
	bases = append(bases, os.TempDir())
	for i, base := range bases {
		last := i == len(bases)-1
		err := error(nil)
		if u.chown != nil {
			err = reachable(base, u.ids)
		}
		if err == nil {
			cleanStaleIn(base, log)
			var wd *workDir
			if wd, err = newWorkDir(base, u.chown, beside != ""); err == nil {
				return &workspace{dir: wd, chown: u.chown}, nil
			}
		}
		if last {
			return nil, err
		}
		log.Debug("cannot create the work directory beside the kept one; using TMPDIR", "err", err)
	}
	return nil, errors.New("no base for a work directory")
}

// cleanStaleIn removes the work directories below base that earlier nbs
// left behind when they were killed.
func cleanStaleIn(base string, log *slog.Logger) {
	if removed, err := cleanStale(base); err != nil {
		log.Warn("could not remove a stale copy", "err", err)
	} else if len(removed) > 0 {
		log.Debug("removed stale copies", "dirs", removed)
	}
}

// enter makes /build from the kept directory buildDir: a copy-on-write
// view where one can be had (chooseView), else a copy. --debug says
// which and why.
//
// noNamespaces: the sandbox gets no mount namespace (modeNoNamespaces),
// so nothing can be mounted for it, and /build is a copy.
//
// above are kept changes over buildDir (nbs shell KEPT), top first: a
// view stacks them, a copy applies them.
func (w *workspace) enter(ctx context.Context, c Config, buildDir string, above []Layer, sandbox Owner, noNamespaces bool, log *slog.Logger) error {
	orig, err := layerOf(buildDir, LayerOrig)
	if err != nil {
		return err
	}
	w.lower = append(append([]Layer(nil), above...), orig)
	if noNamespaces {
		log.Debug("entry mode: copy", "why", "no mount namespace here for a view")
		return w.copy(ctx, buildDir, c.Progress, log)
	}
	owner, err := dirOwner(buildDir)
	if err != nil {
		return err
	}
	fuse := errors.New("nbs runs as root, which has the kernel's overlay")
	if w.chown == nil && (c.Entry == EntryFUSE || c.Entry == EntryAuto && owner != sandbox) {
		fuse = fuseAvailable()
	}
	choice, err := chooseView(c.Entry, w.chown != nil, owner, sandbox, fuse)
	if err != nil {
		return err
	}
	if choice.mode != EntryCopy {
		// Kept changes are stacked by the overlay that wrote them: the
		// kernel's and fuse-overlayfs mark opaque directories each in
		// their own way.
		for _, l := range above {
			why := ""
			if l.Format != layerFormat(choice.mode) {
				why = fmt.Sprintf("the kept changes %s were made by %s, which this view (%s) cannot stack", l.Path, formatName(l.Format), choice.mode)
			} else if o, err := dirOwner(l.Path); err != nil {
				why = err.Error()
			} else if choice.mode == EntryOverlay && o != sandbox {
				// Only the kept directory is idmapped: the kernel's
				// overlay could neither read nor copy up the changes
				// of another user (a build user busy now, as root).
				why = fmt.Sprintf("the kept changes %s belong to %d:%d, not to the sandbox user %d:%d", l.Path, o.UID, o.GID, sandbox.UID, sandbox.GID)
			}
			if why != "" {
				if c.Entry != EntryAuto {
					return fmt.Errorf("entry mode %s is not available: %s", choice.mode, why)
				}
				choice = viewChoice{mode: EntryCopy, why: why}
				break
			}
		}
	}
	if choice.mode != EntryCopy {
		err := w.overlay(buildDir, owner, choice, log)
		if err == nil {
			log.Debug("entry mode: "+choice.mode+" (copy-on-write view of the kept directory)", "why", choice.why, "upper", w.dir.upper())
			return nil
		}
		if c.Entry != EntryAuto {
			return err
		}
		choice.why = err.Error()
	}
	log.Debug("entry mode: copy (reflinks where the file system has them)", "why", choice.why)
	if w.beforeCopy != nil {
		if err := w.beforeCopy(); err != nil {
			return err
		}
	}
	return w.copy(ctx, buildDir, c.Progress, log)
}

// overlay prepares the copy-on-write view of buildDir, owned by owner:
// its directories and, with idmap, the idmapped lower layer.
func (w *workspace) overlay(buildDir string, owner Owner, choice viewChoice, log *slog.Logger) error {
	if err := makeViewDirs(w.dir, w.chown, choice.idmap); err != nil {
		return err
	}
	v := &viewSpec{Lower: buildDir, Upper: w.dir.upper(), Work: w.dir.work(), Target: w.dir.build()}
	for _, l := range w.lower[:len(w.lower)-1] {
		v.Above = append(v.Above, l.Path)
	}
	if choice.mode == EntryFUSE {
		files, server := openFUSE(v, log.Debug)
		v.FUSE = true
		w.files, w.fuseServer, w.view = files, server, v
		return nil
	}
	if choice.idmap {
		lower, err := idmappedTree(buildDir, owner, *w.chown)
		if err != nil {
			removeViewDirs(w.dir)
			return err
		}
		w.files, v.Lower, v.LowerFD = &viewFiles{fd: lower}, w.dir.lower(), true
	}
	w.view = v
	return nil
}

// fallBack replaces a view the child could not mount with a copy.
func (w *workspace) fallBack(ctx context.Context, buildDir string, progress func(CopyProgress), log *slog.Logger) error {
	w.dropView()
	if err := removeViewDirs(w.dir); err != nil {
		return err
	}
	return w.copy(ctx, buildDir, progress, log)
}

// dropView lets go of the view's idmapped lower layer.
func (w *workspace) dropView() {
	if w.fuseServer != nil {
		// After the sandbox: its end took the mount down, and the
		// server with it; a kill makes sure.
		if cmd := w.fuseServer(); cmd != nil {
			cmd.Process.Kill()
			cmd.Wait()
		}
		w.fuseServer = nil
	}
	if w.files != nil && w.files.fd != nil {
		w.files.fd.Close()
		w.files = nil
	}
	w.view = nil
}

// copy copies the kept directory buildDir to the work directory's
// build/. Entries it cannot read are left out with a warning (and
// remembered in notCopied), as are those no copy can re-create.
func (w *workspace) copy(ctx context.Context, buildDir string, progress func(CopyProgress), log *slog.Logger) error {
	log.Debug("copying kept directory", "from", buildDir, "to", w.dir.build())
	report, err := copyTree(ctx, buildDir, w.dir.build(), copyOptions{Chown: w.chown, Progress: progress})
	var unreadable *unreadableError
	switch {
	case errors.As(err, &unreadable):
		w.notCopied = unreadable.Paths
		log.Warn(err.Error() + "; they are missing from /build (run nbs with sudo to copy them)")
	case err != nil:
		return err
	}
	for _, s := range report.Skipped {
		log.Warn("not copied (cannot be re-created): " + s)
	}
	// Kept changes over the kept directory, bottom first.
	for i := len(w.lower) - 2; i >= 0; i-- {
		l := w.lower[i]
		log.Debug("applying kept changes to the copy", "changes", l.Path)
		if err := applyLayer(l.Path, l.Format, l.owner, w.dir.build(), w.chown); err != nil {
			return err
		}
	}
	return nil
}

// layerFormat is the format of the upper directory a view of mode writes.
func layerFormat(mode string) string {
	if mode == EntryFUSE {
		return LayerFUSE
	}
	return LayerKernel
}

func formatName(format string) string {
	if format == LayerFUSE {
		return "fuse-overlayfs"
	}
	return "the kernel's overlay"
}

// close ends the workspace once the session has ended with err. With
// keep and no error the work directory stays, marked as a copy of origin
// before its lock is let go, so that no later nbs takes it for an
// abandoned one, and the copy's path is returned; otherwise it is
// removed. It returns the session's error, or its own.
//
// A view keeps its upper directory, the changes, and the record of what
// they lie on (KeptView, written before .origin marks the directory
// kept); the work directory itself is then the kept result.
func (w *workspace) close(keep bool, origin string, err error) (keptCopy string, _ error) {
	view := w.view
	w.dropView()
	if keep && err == nil {
		kept := w.dir.build()
		if view != nil {
			kv := &KeptView{Format: LayerKernel, Lower: w.lower}
			if view.FUSE {
				kv.Format = LayerFUSE
			}
			if err = syncUpper(view.Upper); err == nil {
				err = writeRecord(w.dir.path, viewFile, formatView(kv), w.chown)
			}
			kept = w.dir.path
		}
		if err == nil {
			err = writeOrigin(w.dir.path, CanonicalDir(origin), w.chown)
		}
		if err == nil {
			w.dir.lock.Close()
			return kept, nil
		}
	}
	if rerr := w.dir.remove(); rerr != nil && err == nil {
		err = fmt.Errorf("remove copy %s: %w", w.dir.path, rerr)
	}
	return "", err
}

// syncUpper writes kept changes to disk before they are recorded as
// kept: the kernel's overlay is mounted volatile (compileView), and
// fuse-overlayfs syncs nothing either.
func syncUpper(upper string) error {
	fd, err := unix.Open(upper, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("sync kept changes: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Syncfs(fd); err != nil {
		return fmt.Errorf("sync kept changes %s: %w", upper, err)
	}
	return nil
}

// reachable checks that the sandbox user can reach dir: as root nbs
// creates the work directory there, and the sandbox, running as owner,
// must be able to get to it.
func reachable(dir string, owner Owner) error {
	for p := dir; ; p = filepath.Dir(p) {
		info, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("work directory base %s: %w", dir, err)
		}
		st := info.Sys().(*syscall.Stat_t)
		m := info.Mode().Perm()
		ok := m&0o001 != 0 || (int(st.Uid) == owner.UID && m&0o100 != 0) || (int(st.Gid) == owner.GID && m&0o010 != 0)
		if !ok {
			return fmt.Errorf("the sandbox runs as uid %d, which cannot reach %s (mode %#o) on the way to the work directory in %s; set TMPDIR to a directory it can reach, e.g. TMPDIR=/tmp", owner.UID, p, m, dir)
		}
		if p == "/" {
			return nil
		}
	}
}

func mappingSources(ms []PathMapping) []string {
	var s []string
	for _, m := range ms {
		s = append(s, m.Source)
	}
	return s
}

// findDerivation reads the failed derivation: drvPath when nbs build
// named it, else the one in the store whose name and output the build's
// variables give.
func findDerivation(drvPath string, v buildVars) (string, *nix.Derivation, error) {
	if drvPath != "" {
		d, err := nix.ReadDerivation(drvPath)
		return drvPath, d, err
	}
	name, _ := v.get("name")
	out := ""
	if outs := v.outputs(); len(outs) > 0 {
		out, _ = v.get("out")
		if out == "" {
			out = outs[0]
		}
	}
	if name == "" || out == "" {
		return "", nil, errors.New("the build's variables have no name and out")
	}
	return nix.FindDerivation(nix.StoreDir, name, out)
}

// storeView returns the store paths the sandbox shows, as Nix does: the
// closure of the derivation's inputs plus that of the store paths in
// sandbox-paths. When the derivation is unknown (drvErr), the closure of
// the store paths the build's variables mention stands in; when no
// closure can be computed at all, nil (the whole store, read-only) with
// a warning. The tools (--with) and their closure are added.
func storeView(ctx context.Context, d *nix.Derivation, drvErr error, v buildVars, extra, tools []string, log *slog.Logger) []string {
	var roots []string
	err := drvErr
	if err == nil {
		roots, err = d.InputPaths()
	}
	if err != nil {
		log.Debug("derivation unknown; taking the store paths the build's variables name", "err", err)
		outputs := map[string]bool{}
		for _, p := range v.outputs() {
			outputs[p] = true
		}
		for _, val := range v.values() {
			for _, p := range nix.StorePathsIn(val) {
				if !outputs[p] {
					roots = append(roots, p)
				}
			}
		}
	} else {
		log.Debug("store view from the derivation's inputs")
	}
	for _, p := range extra {
		roots = append(roots, nix.StorePathsIn(p)...)
	}
	// Tools the user asked for (--with), with their closure.
	roots = append(roots, tools...)
	closure, from, err := nix.Requisites(ctx, nix.ExistingStorePaths(roots))
	log.Debug("store view closure", "paths", len(closure), "from", from)
	if err != nil {
		log.Warn("cannot compute the build's input closure; showing the whole store read-only", "err", err)
		return nil
	}
	if closure == nil {
		closure = []string{}
	}
	return closure
}
