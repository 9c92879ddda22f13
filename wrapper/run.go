package wrapper

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"github.com/nix-build-shell/nbs/sandbox/interrupt"
	"github.com/nix-build-shell/nbs/sandbox/term"
)

// Options says which nix-build to run and with what.
type Options struct {
	Program string   // "nix-build" or "nix" (new CLI); path or name looked up in PATH
	Args    []string // passed verbatim: build them with Command
	Dir     string   // working directory (where ./result goes); "" = nbs's own
	Env     []string // environment; nil = nbs's own
	Stdin   io.Reader
	Stdout  io.Writer // an *os.File is given to nix-build as it is
	Stderr  io.Writer // shown unchanged; a terminal stays a terminal for nix-build (see Run)
	// WatchDirs are build-dir roots to watch for new build directories
	// (fallback discovery); see DefaultWatchDirs.
	WatchDirs []string
	// Log gets the trace of the run (debug); nil logs nothing.
	Log *slog.Logger
}

// Result is how the build went.
type Result struct {
	ExitCode int       // nix-build's exit status (128+N if killed by signal N)
	Failures []Failure // from the log scanner, cross-checked with the watcher
	// Unmatched are kept directories the log named but that neither the
	// log nor the watcher could tie to a derivation (Scanner.Unmatched).
	Unmatched []string
	Signal    os.Signal // non-nil if nbs got SIGINT/SIGTERM/SIGHUP during the build (forwarded to nix-build)
}

// discard is the logger of a caller that gave none.
var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

const (
	// killGrace is how long nix-build has to stop after a forwarded signal
	// (or ctx's end) before it gets SIGKILL. Nix stops its builders and
	// exits within milliseconds of SIGINT.
	killGrace = 3 * time.Second
	// drainWait bounds the wait for the end of stderr after nix-build has
	// exited: a process it left behind may hold the pipe open.
	drainWait = time.Second
)

// Run runs opts.Program with opts.Args and returns its exit status and the
// failed derivations. The error is non-nil only when the program could not
// be started at all (not found: it wraps exec.ErrNotFound).
//
// nix-build shares nbs's terminal and process group, so a Ctrl-C at the
// terminal reaches it directly. Meanwhile nbs catches SIGINT, SIGTERM and
// SIGHUP, passes each on to nix-build (needed when it came from kill(1);
// a second SIGINT is harmless to Nix, which only sets its interrupt flag),
// waits for it to exit, SIGKILLs it after killGrace, and reports the first
// signal in Result.Signal; a signal that comes before nix-build has started
// means it never starts. The end of ctx stops nix-build the same way
// (SIGTERM).
//
// stdout goes to nix-build directly. stderr is copied through as it is
// read, byte for byte, while the scanner reads the same bytes. When
// opts.Stderr is a terminal, nix-build's stderr is a pty in raw mode
// (Linux) with the terminal's size, because Nix only draws colours and its
// progress bar when isatty(2); the copy is then what nix-build would have
// written to the terminal itself.
func Run(ctx context.Context, opts Options) (Result, error) {
	res := Result{ExitCode: -1}
	log := opts.Log
	if log == nil {
		log = discard
	}
	path, err := exec.LookPath(opts.Program)
	if err != nil {
		return res, fmt.Errorf("find %s: %w", opts.Program, err)
	}
	if path, err = filepath.Abs(path); err != nil { // opts.Dir must not change which program runs
		return res, fmt.Errorf("find %s: %w", opts.Program, err)
	}
	cmd := exec.Command(path, opts.Args...)
	cmd.Args[0] = opts.Program
	cmd.Dir, cmd.Env = opts.Dir, opts.Env
	cmd.Stdin, cmd.Stdout = opts.Stdin, opts.Stdout

	stderr := opts.Stderr
	if stderr == nil {
		stderr = io.Discard
	}
	r, w, resize, err := stderrFor(stderr, log)
	if err != nil {
		return res, fmt.Errorf("set up stderr for %s: %w", opts.Program, err)
	}
	defer r.Close()
	cmd.Stderr = w

	watch := startWatch(opts.WatchDirs, log)
	defer watch.stop()

	// Catch the signals before nix-build exists, so none can kill nbs and
	// leave it running.
	_, signals := interrupt.Catch(context.Background())
	defer signals.Stop()
	winch := make(chan os.Signal, 1)
	if resize != nil {
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
	}

	if err := signals.Start(cmd, 0); err != nil {
		w.Close()
		var ie *interrupt.Error
		if errors.As(err, &ie) { // nix-build never ran
			res.Signal = ie.Signal
			return res, nil
		}
		return res, fmt.Errorf("start %s: %w", opts.Program, err)
	}
	w.Close() // nix-build has its own copy; EOF when it (and its children) close theirs

	scanner := NewScanner()
	copied := make(chan struct{})
	go func() {
		copyStream(r, stderr, scanner, log)
		close(copied)
	}()

	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var kill <-chan time.Time
	grace := func() {
		if kill == nil {
			kill = time.After(killGrace)
		}
	}
	done, interrupted := ctx.Done(), signals.Interrupted()
wait:
	for {
		select {
		case <-waited:
			break wait
		case <-interrupted: // signals has passed it on to nix-build
			interrupted = nil
			res.Signal = signals.Signal()
			grace()
		case <-done:
			done = nil
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
				log.Debug("signal nix-build", "signal", syscall.SIGTERM, "err", err)
			}
			grace()
		case <-kill:
			log.Debug("nix-build did not stop; killing it", "pid", cmd.Process.Pid)
			cmd.Process.Kill()
		case <-winch:
			resize()
		}
	}
	res.ExitCode = interrupt.Status(cmd.ProcessState)

	// Read what is left; a process nix-build left behind must not keep
	// nbs waiting.
	if err := r.SetReadDeadline(time.Now().Add(drainWait)); err != nil {
		log.Debug("stderr read deadline", "err", err)
	}
	<-copied

	created := watch.stop()
	res.Failures = scanner.Failures()
	crossCheck(res.Failures, created, log)
	res.Unmatched = untied(scanner.Unmatched(), res.Failures)
	return res, nil
}

// untied are the dirs that none of fails has as its kept directory.
func untied(dirs []string, fails []Failure) []string {
	var out []string
	for _, d := range dirs {
		if !slices.ContainsFunc(fails, func(f Failure) bool { return f.Builder == "" && filepath.Clean(f.KeptDir) == filepath.Clean(d) }) {
			out = append(out, d)
		}
	}
	return out
}

// copyStream copies r to w as it reads, each chunk as soon as it arrives
// (no line buffering: progress redraws with "\r" show live), and lets s
// scan the same bytes in parallel. It returns at EOF or a read error (EIO
// from a pty whose other side is closed, a deadline); a failing w does
// not stop the reading, so nix-build never blocks on a full pipe.
func copyStream(r io.Reader, w io.Writer, s *Scanner, log *slog.Logger) {
	chunks := make(chan []byte, 64)
	scanned := make(chan struct{})
	go func() {
		for c := range chunks {
			s.Write(c)
		}
		s.Close()
		close(scanned)
	}()
	buf := make([]byte, 32<<10)
	wok := true
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if wok {
				if _, werr := w.Write(buf[:n]); werr != nil {
					log.Debug("copy nix-build's stderr", "err", werr)
					wok = false
				}
			}
			chunks <- append([]byte(nil), buf[:n]...)
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, syscall.EIO) {
				log.Debug("read nix-build's stderr", "err", err)
			}
			break
		}
	}
	close(chunks)
	<-scanned
}

// stderrFor makes nix-build's stderr: a pty when out is a terminal (and
// this is Linux), else a pipe. r is nbs's end, w nix-build's; resize, when
// not nil, copies out's window size to the pty again.
func stderrFor(out io.Writer, log *slog.Logger) (r, w *os.File, resize func(), err error) {
	if f, ok := out.(*os.File); ok && term.IsTerminal(f) {
		r, w, err := openPTY()
		if err == nil {
			resize := func() { term.CopySize(f, r) }
			resize()
			return r, w, resize, nil
		}
		log.Debug("no pty for nix-build's stderr; using a pipe", "err", err)
	}
	r, w, err = os.Pipe()
	return r, w, nil, err
}

// DefaultWatchDirs returns the build-dir roots worth watching, existing
// ones only, without duplicates: buildDir (Nix's build-dir setting, when
// the caller knows it), this process's $TMPDIR, /tmp (the default TMPDIR
// of a daemon), /nix/var/nix/builds (Nix 2.30+) and /nix/var/nix/b
// (Lix 2.94+). A daemon's own TMPDIR cannot be known from here.
func DefaultWatchDirs(buildDir string) []string {
	var out []string
	seen := map[string]bool{}
	for _, d := range append([]string{buildDir}, buildDirRoots()...) {
		if d == "" {
			continue
		}
		d = filepath.Clean(d)
		if seen[d] {
			continue
		}
		seen[d] = true
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			out = append(out, d)
		}
	}
	return out
}
