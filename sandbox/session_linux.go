package sandbox

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox/interrupt"
)

// Enter gives the kept directory a private copy-on-write view (or a
// copy), runs the command (or an interactive shell) in a re-created Nix
// sandbox over it, tells c.Changed what changed, removes the work
// directory (with Keep, returns the copy's path instead) and returns the
// command's exit status (128+N when it was killed by signal N). SIGINT, SIGTERM and SIGHUP end the sandbox and
// return an *interrupt.Error.
//
// A session is four parts, each in a file of its own: prepare (read what
// the build left, the sandbox user, the host's Nix), workspace (the work
// directory, the view or copy, the store view), spec (the sandbox the child is
// to build) and run (start, terminal, wait, what changed). Clean-up is
// deferred, in the reverse order.
func Enter(ctx context.Context, c Config) (status int, keptCopy string, err error) {
	log := logOr(c.Log, c.Stderr)
	// First, so that a signal at any later point ends the session
	// through the same clean-up.
	ctx, signals := interrupt.Catch(ctx)
	defer signals.Stop()

	// Prepare. The kept directory, its env-vars and --with are checked
	// before anything is created: bad input leaves nothing behind.
	b, err := readBuild(c.Dir, c.With)
	if err != nil {
		return 0, "", err
	}
	// Tells nbs gc that the kept directory is in use.
	unlock, err := LockKept(b.dir)
	if err != nil {
		return 0, "", err
	}
	defer unlock()
	if b.above != nil {
		unlockChanges, err := lockChanges(b.origin)
		if err != nil {
			return 0, "", err
		}
		defer unlockChanges()
	}
	// The sandbox user before the work directory, which belongs to it
	// when nbs is root, and before nix runs: root's groups go first.
	// Kept changes entered again belong to the user who made them.
	prefer := -1
	if len(b.above) > 0 {
		if o, err := dirOwner(b.above[0].Path); err == nil {
			prefer = o.UID
		}
	}
	u, err := takeSandboxUserPreferring(prefer)
	if err != nil {
		return 0, "", err
	}
	defer u.release()
	// Whether the build ran in Nix's sandbox, from the user's word or
	// Nix's setting (the latter read now only for a build whose env-vars
	// claims the host).
	known, err := decideSandbox(ctx, c, b, log)
	if err != nil {
		return 0, "", err
	}
	// How to enter: an unsandboxed build from a probe of the namespaces
	// it needs (without them, it is entered on the host); a sandboxed
	// one that cannot get them fails when its sandbox starts, below.
	m, restriction, err := chooseMode(b, u.ids, log)
	if err != nil {
		return 0, "", err
	}
	// The host's Nix and the store are asked (or their answers read from
	// the cache) while the work directory is made and the copy runs:
	// neither needs them.
	type nixAnswers struct {
		facts   hostFacts
		drvPath string
		drv     *nix.Derivation
		drvErr  error
		store   []string
	}
	view := func(a *nixAnswers) []string {
		if m != modeSandbox {
			return nil // an unsandboxed build saw the whole store
		}
		return storeView(ctx, a.drv, a.drvErr, b.vars, append(mappingSources(a.facts.extra), b.shell), b.tools, log)
	}
	answers := make(chan *nixAnswers, 1)
	go func() {
		a := &nixAnswers{}
		if known != nil {
			a.facts = *known
		} else {
			a.facts = readHostFacts(ctx, log)
		}
		a.drvPath, a.drv, a.drvErr = findDerivation(c.Drv, b.vars)
		a.store = view(a)
		answers <- a
	}()

	// Workspace. From here on the work directory exists: it is removed
	// (or kept) on every way out, after the sandbox has ended.
	beside := ""
	if m == modeNoNamespaces {
		beside = b.dir
	}
	ws, err := openWorkspace(u, beside, log)
	if err != nil {
		return 0, "", err
	}
	defer func() { keptCopy, err = ws.close(c.Keep, b.origin, err) }()
	if m == modeSandbox {
		// A sandbox that cannot start fails before a copy, not after.
		ws.beforeCopy = func() error {
			_, fixedOutput := b.vars.get("outputHash")
			return probeSandbox(fixedOutput, u.ids)
		}
	}
	if err := ws.enter(ctx, c, b.dir, b.above, u.ids, m == modeNoNamespaces, log); err != nil {
		// A copy cut short by a signal reports the signal.
		if ierr := signals.Err(); ierr != nil {
			return 0, "", ierr
		}
		return 0, "", err
	}
	a := <-answers
	facts := a.facts
	b.drvPath, ws.storePaths = a.drvPath, a.store
	// The copy can take minutes, long enough for a garbage collection
	// to remove part of the closure: then it is asked again.
	if gone := missingPath(ws.storePaths); gone != "" {
		log.Debug("store path gone during the copy; computing the store view again", "path", gone)
		ws.storePaths = view(a)
	}

	// Spec: the sandbox the child is to build, from what the parts
	// above found. Nothing on the host changes between here and the
	// start.
	s := newSpec(c, b, m, facts, ws, log)
	if restriction != nil {
		// Once, after the word on entry: what would give the full
		// reproduction.
		log.Warn("namespaces are refused here: " + restriction.hint)
	}

	// Run. A signal that came during the set-up ends the session before
	// a sandbox is started; one that comes while it runs has killed it.
	if ierr := signals.Err(); ierr != nil {
		return 0, "", ierr
	}
	status, err = run(ctx, s, u.ids, ws.files, c.Stdin, c.Stdout, c.Stderr)
	if err != nil && ws.view != nil && isViewFailure(err) && c.Entry == EntryAuto {
		// An old kernel, or a file system overlayfs cannot stack on:
		// the copy is the last resort.
		log.Debug("entry mode: copy, the copy-on-write view failed", "err", err)
		if err := ws.fallBack(ctx, b.dir, c.Progress, log); err != nil {
			if ierr := signals.Err(); ierr != nil {
				return 0, "", ierr
			}
			return 0, "", err
		}
		s = newSpec(c, b, m, facts, ws, log)
		status, err = run(ctx, s, u.ids, nil, c.Stdin, c.Stdout, c.Stderr)
	}
	if err != nil {
		return 0, "", err
	}
	if ierr := signals.Err(); ierr != nil {
		return 0, "", ierr
	}
	// Before the deferred clean-up removes the copy.
	if c.Changed != nil {
		reportChanges(b, ws, c.Changed, log)
	}
	return status, "", nil
}

// missingPath is a path of paths that does not exist, or "".
func missingPath(paths []string) string {
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			return p
		}
	}
	return ""
}

// logOr is log, or, when the caller gave none, a logger that prints the
// session's warnings on stderr.
func logOr(log *slog.Logger, stderr io.Writer) *slog.Logger {
	if log != nil {
		return log
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}
