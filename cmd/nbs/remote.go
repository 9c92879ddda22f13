package main

// Entering a failed build on a remote builder.
//
// Nix keeps a remote build's directory on the builder, so nbs goes there
// the way Nix went: `ssh HOST -x -a $NIX_SSHOPTS -i KEY …` (Nix 2.8's
// SSHMaster), and runs nbs on the builder. The conversation with the
// builder is four ssh commands, each a POSIX sh script:
//
//	nbs                                   builder
//	 |-- probe: mktemp -d, command -v nbs, uname -sm --->|  (dir=, nbs=, uname=)
//	 |-- copy (no nbs there): cat > DIR/nbs ------------>|  this binary on stdin
//	 |-- run: echo $$ > DIR/pid; exec nbs shell … ------>|  -tt with a terminal, pipes without
//	 |-- cleanup: end DIR/pid's nbs if alive; rm -rf DIR>|  always, also after errors and signals
//
// The remote nbs makes its own pty, copies the kept directory to a private
// place and removes the copy, exactly as locally; the kept directory itself
// is never changed. The remote exit status comes back through ssh.

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/sandbox"
	terminal "github.com/nix-build-shell/nbs/sandbox/term"
	"github.com/nix-build-shell/nbs/wrapper"
	"github.com/spf13/cobra"
)

// remoteTarget is where a builder URI says to ssh to.
type remoteTarget struct {
	URI     string // as given
	Scheme  string // "ssh" or "ssh-ng"
	Dest    string // [user@]host: ssh's destination
	Host    string // host alone (for a known_hosts line)
	Port    string // "" for ssh's default
	Key     string // private key for -i, "" for ssh's own choice
	HostKey string // base64 public host key (the builder line's last field)
	// Compress: the store's compress=true, which Nix turns into -C.
	Compress bool
}

var errNotSSH = errors.New("not an ssh:// or ssh-ng:// builder")

// parseRemote reads a builder URI: ssh://[USER@]HOST[:PORT][?PARAMS] or
// ssh-ng://…, or a bare HOST (which Nix reads as ssh://HOST). Of the
// parameters, ssh-key, base64-ssh-public-host-key and compress matter
// for ssh, as in Nix's SSH store settings.
func parseRemote(uri string) (*remoteTarget, error) {
	t := &remoteTarget{URI: uri}
	rest := uri
	if scheme, r, ok := strings.Cut(uri, "://"); ok {
		t.Scheme, rest = scheme, r
	} else if !strings.ContainsAny(uri, "/") && !isStoreWord(uri) {
		// A bare host, which Nix reads as ssh://HOST.
		t.Scheme = "ssh"
	}
	if t.Scheme != "ssh" && t.Scheme != "ssh-ng" {
		return nil, fmt.Errorf("builder %s: %w", uri, errNotSSH)
	}
	authority, _, _ := strings.Cut(rest, "?")
	authority, _, _ = strings.Cut(authority, "/")
	t.Key = wrapper.URIParam(uri, "ssh-key")
	t.HostKey = wrapper.URIParam(uri, "base64-ssh-public-host-key")
	t.Compress = wrapper.URIParam(uri, "compress") == "true"
	user := ""
	hostport := authority
	if i := strings.LastIndexByte(authority, '@'); i >= 0 {
		user, hostport = authority[:i], authority[i+1:]
	}
	host := hostport
	switch {
	case strings.HasPrefix(hostport, "["):
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return nil, fmt.Errorf("builder %s: unclosed '[' in host", uri)
		}
		host = hostport[1:end]
		if p, ok := strings.CutPrefix(hostport[end+1:], ":"); ok {
			t.Port = p
		} else if hostport[end+1:] != "" {
			return nil, fmt.Errorf("builder %s: junk after ']'", uri)
		}
	case strings.Count(hostport, ":") == 1:
		host, t.Port, _ = strings.Cut(hostport, ":")
	}
	if host == "" {
		return nil, fmt.Errorf("builder %s: no host", uri)
	}
	if t.Port != "" && strings.Trim(t.Port, "0123456789") != "" {
		return nil, fmt.Errorf("builder %s: port %q is not a number", uri, t.Port)
	}
	// ssh would read a destination or a key starting with '-' as an
	// option.
	if strings.HasPrefix(host, "-") || strings.HasPrefix(user, "-") || strings.HasPrefix(t.Key, "-") {
		return nil, fmt.Errorf("builder %s: host, user or key starts with '-'", uri)
	}
	t.Host, t.Dest = host, host
	if user != "" {
		t.Dest = user + "@" + host
	}
	return t, nil
}

// isStoreWord: Nix's own names for stores that are no host (auto,
// daemon, local, with or without parameters).
func isStoreWord(uri string) bool {
	w, _, _ := strings.Cut(uri, "?")
	return w == "" || w == "auto" || w == "daemon" || w == "local"
}

// withBuilder fills in what the builder line says and the URI does not:
// the key (third field) and the public host key (eighth).
func (t *remoteTarget) withBuilder(b wrapper.Builder) {
	if t.Key == "" {
		t.Key = b.Key()
	}
	if t.HostKey == "" {
		t.HostKey = b.HostKey()
	}
}

// sshArgs are ssh's arguments as Nix 2.8 builds them (SSHMaster::
// startCommand, addCommonSSHOpts): HOST -x -a, then $NIX_SSHOPTS split at
// blanks, -i KEY, the known hosts file for the builder's public host key,
// -C; then the port, the tty choice and the remote command.
func (t *remoteTarget) sshArgs(sshOpts, knownHosts string, tty bool, command string) []string {
	args := []string{t.Dest, "-x", "-a"}
	args = append(args, strings.Fields(sshOpts)...)
	if t.Key != "" {
		args = append(args, "-i", t.Key)
	}
	if knownHosts != "" {
		args = append(args, "-oUserKnownHostsFile="+knownHosts)
	}
	if t.Compress {
		args = append(args, "-C")
	}
	if t.Port != "" {
		args = append(args, "-p", t.Port)
	}
	if tty {
		args = append(args, "-tt")
	} else {
		args = append(args, "-T")
	}
	return append(args, command)
}

// knownHostsLine is the line Nix writes for a builder's public host key.
func (t *remoteTarget) knownHostsLine() (string, error) {
	key, err := base64.StdEncoding.DecodeString(t.HostKey)
	if err != nil {
		return "", fmt.Errorf("builder %s: public host key is not base64: %w", t.URI, err)
	}
	host := t.Host
	if t.Port != "" && t.Port != "22" {
		host = "[" + host + "]:" + t.Port
	}
	return host + " " + strings.TrimSpace(string(key)) + "\n", nil
}

// remoteURI is the URI to give `nbs shell --remote` for builder b: its own
// URI, with the key and host key of its line added as the SSH store's
// ssh-key and base64-ssh-public-host-key parameters, so that the command
// alone reaches the builder as Nix did.
func remoteURI(b wrapper.Builder) string {
	u := b.URI
	t, err := parseRemote(u)
	if err != nil {
		return u
	}
	if t.Key == "" && b.Key() != "" {
		u = wrapper.WithURIParam(u, "ssh-key", b.Key())
	}
	if t.HostKey == "" && b.HostKey() != "" {
		u = wrapper.WithURIParam(u, "base64-ssh-public-host-key", b.HostKey())
	}
	return u
}

// remoteOptions is one request to enter a kept directory on a builder.
type remoteOptions struct {
	Target  *remoteTarget
	Dir     string   // the kept directory on the builder
	Command []string // empty: an interactive shell
	Keep    bool
}

// shQuote quotes s for a POSIX shell, always.
func shQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// shCommand is script as the one remote command ssh sends: run by sh, so
// that it means the same whatever the remote user's login shell is.
func shCommand(script string) string { return "sh -c " + shQuote(script) }

// probeScript makes the private directory (mode 0711: the sandbox user
// must be able to re-execute a copy of nbs in it) and says whether nbs is
// installed (a program called nbs that says "nbs VERSION" to --version)
// and what the builder is.
const probeScript = `umask 077; d=$(mktemp -d "${TMPDIR:-/tmp}/nbs-remote.XXXXXXXXXX") && chmod 711 "$d" && echo "dir=$d"; ` +
	`p=$(command -v nbs) && "$p" --version 2>/dev/null | grep -q '^nbs ' && echo "nbs=$p"; echo "uname=$(uname -sm)"`

func copyScript(dir string) string {
	return `cat > ` + shQuote(dir+"/nbs") + ` && chmod 755 ` + shQuote(dir+"/nbs")
}

// runScript records nbs's pid (exec keeps the shell's) for cleanupScript,
// then becomes `nbs shell`.
func runScript(dir, nbs string, args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = shQuote(a)
	}
	env := ""
	if _, ok := os.LookupEnv("NO_COLOR"); ok {
		// ssh passes on TERM only; the user's wish for no colours
		// (https://no-color.org) holds on the builder too.
		env = "export NO_COLOR=1; "
	}
	return `echo $$ > ` + shQuote(dir+"/pid") + ` && ` + env + `exec ` + shQuote(nbs) + ` ` + strings.Join(q, " ")
}

// cleanupScript ends the nbs of runScript if it still runs (after a lost
// connection or an interrupt: SIGTERM makes it end its sandbox and remove
// its copy) and removes the private directory. The process must still be
// an nbs, so a reused pid is left alone.
func cleanupScript(dir string) string {
	d := shQuote(dir)
	return `d=` + d + `; if [ -r "$d/pid" ]; then p=$(cat "$d/pid"); ` +
		`case $(readlink "/proc/$p/exe" 2>/dev/null) in */nbs|*"/nbs (deleted)") kill -TERM "$p" 2>/dev/null; i=0; ` +
		`while kill -0 "$p" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1 2>/dev/null || sleep 1; i=$((i+1)); done; kill -KILL "$p" 2>/dev/null;; esac; fi; ` +
		`rm -rf "$d"`
}

// probe is what the builder said.
type probe struct {
	dir, nbs, uname string
}

func parseProbe(out string) probe {
	var p probe
	for _, l := range strings.Split(out, "\n") {
		k, v, _ := strings.Cut(strings.TrimSpace(l), "=")
		switch k {
		case "dir":
			p.dir = v
		case "nbs":
			p.nbs = v
		case "uname":
			p.uname = v
		}
	}
	return p
}

// unameMatches reports whether `uname -sm` describes a machine this
// binary runs on.
func unameMatches(uname, goos, goarch string) bool {
	f := strings.Fields(uname)
	if len(f) != 2 {
		return false
	}
	oses := map[string]string{"Linux": "linux", "Darwin": "darwin", "FreeBSD": "freebsd"}
	arches := map[string][]string{
		"x86_64": {"amd64"}, "amd64": {"amd64"},
		"aarch64": {"arm64"}, "arm64": {"arm64"},
		"i686": {"386"}, "i386": {"386"},
		"armv7l": {"arm"}, "armv6l": {"arm"},
		"riscv64": {"riscv64"}, "ppc64le": {"ppc64le"}, "s390x": {"s390x"},
	}
	if oses[f[0]] != goos {
		return false
	}
	for _, a := range arches[f[1]] {
		if a == goarch {
			return true
		}
	}
	return false
}

// remoteRunner runs ssh for one remote session.
type remoteRunner struct {
	f          *Factory
	t          *remoteTarget
	sshOpts    string
	knownHosts string
	// ssh is the ssh program: "ssh", looked up in PATH as Nix does.
	ssh string
}

// output runs a remote script without a terminal and returns its stdout.
func (r *remoteRunner) output(ctx context.Context, script string, stdin io.Reader) (string, error) {
	args := r.t.sshArgs(r.sshOpts, r.knownHosts, false, shCommand(script))
	cmd := exec.CommandContext(ctx, r.ssh, args...)
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	r.f.Log().Debug("ssh", "args", strings.Join(args, " "))
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = "no message"
		}
		return stdout.String(), fmt.Errorf("ssh %s: %w: %s", r.t.Dest, err, msg)
	}
	return stdout.String(), nil
}

// enterRemote enters the kept directory o.Dir on the builder and returns
// the remote command's exit status.
func enterRemote(ctx context.Context, f *Factory, o remoteOptions) (status int, err error) {
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		return 0, &hintError{fmt.Errorf("find ssh: %w", err), "install OpenSSH's client, which Nix uses for remote builders too"}
	}
	r := &remoteRunner{f: f, t: o.Target, sshOpts: os.Getenv("NIX_SSHOPTS"), ssh: ssh}
	if o.Target.HostKey != "" {
		line, err := o.Target.knownHostsLine()
		if err != nil {
			return 0, err
		}
		kh, err := os.CreateTemp("", "nbs-known-hosts-")
		if err != nil {
			return 0, fmt.Errorf("write known hosts file: %w", err)
		}
		defer os.Remove(kh.Name())
		_, werr := kh.WriteString(line)
		if cerr := kh.Close(); werr == nil {
			werr = cerr
		}
		if werr != nil {
			return 0, fmt.Errorf("write known hosts file: %w", werr)
		}
		r.knownHosts = kh.Name()
	}

	// From here on a signal ends the session, and the cleanup still runs.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	intr := &interrupts{cancel: cancel}
	stop := intr.catch()
	defer stop()

	out, err := r.output(ctx, probeScript, nil)
	p := parseProbe(out)
	if p.dir != "" {
		defer func() {
			// A fresh context: the session's may be cancelled.
			cctx, ccancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer ccancel()
			if _, cerr := r.output(cctx, cleanupScript(p.dir), nil); cerr != nil {
				fmt.Fprintf(f.Stderr, "nbs: warning: could not remove %s on %s: %v\n", p.dir, o.Target.Dest, cerr)
			}
		}()
	}
	if err != nil {
		if serr := intr.err(); serr != nil {
			return 0, serr
		}
		try := "ssh " + o.Target.Dest
		if o.Target.Port != "" {
			try = "ssh -p " + o.Target.Port + " " + o.Target.Dest
		}
		return 0, &hintError{err, "check that '" + try + "' works as Nix uses it (the builder line's key, NIX_SSHOPTS)"}
	}
	if p.dir == "" {
		return 0, fmt.Errorf("%s: could not make a temporary directory there: %q", o.Target.Dest, out)
	}

	nbs := p.nbs
	if nbs == "" {
		if !unameMatches(p.uname, runtime.GOOS, runtime.GOARCH) {
			return 0, &hintError{
				fmt.Errorf("%s has no nbs on its PATH, and this nbs (%s/%s) cannot run there (uname -sm: %s)", o.Target.Dest, runtime.GOOS, runtime.GOARCH, p.uname),
				"install nbs on the builder so that 'command -v nbs' finds it there (e.g. nix profile install github:nix-build-shell/nbs), or build it for that machine (GOOS=linux GOARCH=arm64 for aarch64) and put it on its PATH",
			}
		}
		self, err := os.Open("/proc/self/exe")
		if err != nil {
			if exe, eerr := os.Executable(); eerr == nil {
				self, err = os.Open(exe)
			}
		}
		if err != nil {
			return 0, fmt.Errorf("read this nbs to copy it to %s: %w", o.Target.Dest, err)
		}
		defer self.Close()
		f.Log().Debug("copying nbs to the builder", "dir", p.dir)
		if _, err := r.output(ctx, copyScript(p.dir), self); err != nil {
			if serr := intr.err(); serr != nil {
				return 0, serr
			}
			return 0, fmt.Errorf("copy nbs to %s: %w", o.Target.Dest, err)
		}
		nbs = p.dir + "/nbs"
	}

	args := []string{"shell"}
	if f.Debug {
		args = append(args, "--debug")
	}
	if o.Keep {
		args = append(args, "--keep")
	}
	args = append(append(args, "--", o.Dir), o.Command...)
	tty := terminal.IsTerminal(f.Stdin) && terminal.IsTerminal(f.Stdout)
	sshArgs := o.Target.sshArgs(r.sshOpts, r.knownHosts, tty, shCommand(runScript(p.dir, nbs, args)))
	f.Log().Debug("ssh", "args", strings.Join(sshArgs, " "))
	// Not CommandContext: a signal reaches ssh as SIGTERM (above), which
	// ends it cleanly and restores the terminal it put in raw mode.
	cmd := exec.Command(ssh, sshArgs...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = f.Stdin, f.Stdout, f.Stderr
	if err := intr.start(cmd); err != nil {
		return 0, err
	}
	werr := cmd.Wait()
	if serr := intr.err(); serr != nil {
		return 0, serr
	}
	var ee *exec.ExitError
	if werr != nil && !errors.As(werr, &ee) {
		return 0, fmt.Errorf("ssh %s: %w", o.Target.Dest, werr)
	}
	return cmd.ProcessState.ExitCode(), nil
}

// interrupts catches SIGINT, SIGTERM and SIGHUP for a remote session:
// the first one cancels the session's context and ends the running ssh
// with SIGTERM, which restores the terminal and hangs up the remote pty
// (the remote nbs then ends its sandbox); cleanup runs afterwards.
type interrupts struct {
	cancel func()
	mu     sync.Mutex
	sig    syscall.Signal
	cmd    *exec.Cmd
}

func (in *interrupts) catch() (stop func()) {
	c := make(chan os.Signal, 4)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case s := <-c:
				in.mu.Lock()
				if in.sig == 0 {
					in.sig = s.(syscall.Signal)
				}
				if in.cmd != nil {
					in.cmd.Process.Signal(syscall.SIGTERM)
				}
				in.mu.Unlock()
				in.cancel()
			case <-done:
				return
			}
		}
	}()
	return func() { signal.Stop(c); close(done) }
}

// start starts cmd unless a signal came first.
func (in *interrupts) start(cmd *exec.Cmd) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sig != 0 {
		return &sandbox.SignalError{Signal: in.sig}
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ssh: %w", err)
	}
	in.cmd = cmd
	return nil
}

// err is the signal that ended the session, as an error; nil if none.
func (in *interrupts) err() error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.sig == 0 {
		return nil
	}
	return &sandbox.SignalError{Signal: in.sig}
}

// addRemoteFlag gives `nbs shell` its --remote URI flag: DIR is then a
// kept directory on that builder, and nbs enters it there over ssh.
func addRemoteFlag(cmd *cobra.Command, opts *ShellOptions) {
	var uri string
	cmd.Flags().StringVar(&uri, "remote", "", "DIR is on the remote builder `URI` (ssh://[USER@]HOST[:PORT], ssh-ng://…, as in Nix's builders); enter it there over ssh")
	cmd.Example += `
  nbs shell --remote ssh://nix-docker /tmp/nix-build-hello.drv-0`
	local := cmd.RunE
	cmd.RunE = func(c *cobra.Command, args []string) error {
		if uri == "" {
			return local(c, args)
		}
		if len(args) == 0 {
			return &usageError{errors.New("shell --remote: missing DIR, the kept build directory on the builder")}
		}
		return remoteShellRun(c.Context(), opts.f, uri, args[0], args[1:], opts.Keep)
	}
}

// remoteShellRun is `nbs shell --remote URI DIR [CMD…]`.
func remoteShellRun(ctx context.Context, f *Factory, uri, dir string, command []string, keep bool) error {
	t, err := parseRemote(uri)
	if err != nil {
		return &usageError{err}
	}
	if t.Key == "" || t.HostKey == "" {
		// As Nix would reach it: the key and host key of the configured
		// builder on that host.
		for _, b := range configuredBuilders(ctx, f) {
			if bt, err := parseRemote(b.URI); err == nil && bt.Dest == t.Dest && bt.Port == t.Port {
				t.withBuilder(b)
				break
			}
		}
	}
	status, err := enterRemote(ctx, f, remoteOptions{Target: t, Dir: dir, Command: command, Keep: keep})
	if err != nil {
		return err
	}
	return &exitStatus{status}
}

// configuredBuilders are the builders of the local Nix's configuration,
// nil when it cannot be asked.
func configuredBuilders(ctx context.Context, f *Factory) []wrapper.Builder {
	h, err := nix.ReadHost(ctx)
	if err != nil {
		f.Log().Debug("cannot read Nix's builders setting", "err", err)
		return nil
	}
	bs, err := wrapper.ParseBuilders(h.Settings["builders"], os.ReadFile)
	if err != nil {
		f.Log().Debug("cannot read Nix's builders setting", "err", err)
	}
	return bs
}
