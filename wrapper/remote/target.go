package remote

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
	"github.com/nix-build-shell/nbs/wrapper"
)

// Target is where a builder URI says to ssh to.
type Target struct {
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

// ErrNotSSH marks a builder URI that is no ssh store.
var ErrNotSSH = errors.New("not an ssh:// or ssh-ng:// builder")

// Parse reads a builder URI: ssh://[USER@]HOST[:PORT][?PARAMS] or
// ssh-ng://…, or a bare HOST (which Nix reads as ssh://HOST). Of the
// parameters, ssh-key, base64-ssh-public-host-key and compress matter
// for ssh, as in Nix's SSH store settings.
func Parse(uri string) (*Target, error) {
	t := &Target{URI: uri}
	rest := uri
	if scheme, r, ok := strings.Cut(uri, "://"); ok {
		t.Scheme, rest = scheme, r
	} else if !strings.ContainsAny(uri, "/") && !isStoreWord(uri) {
		// A bare host, which Nix reads as ssh://HOST.
		t.Scheme = "ssh"
	}
	if t.Scheme != "ssh" && t.Scheme != "ssh-ng" {
		return nil, fmt.Errorf("builder %s: %w", uri, ErrNotSSH)
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

// WithBuilder fills in what the builder line says and the URI does not:
// the key (third field) and the public host key (eighth).
func (t *Target) WithBuilder(b wrapper.Builder) {
	if t.Key == "" {
		t.Key = b.Key()
	}
	if t.HostKey == "" {
		t.HostKey = b.HostKey()
	}
}

// Complete fills in the key and host key the URI lacks as Nix would
// reach the host: from the builder on the same host and port in the
// local Nix's builders setting, if there is one.
func (t *Target) Complete(ctx context.Context, log *slog.Logger) {
	if t.Key != "" && t.HostKey != "" {
		return
	}
	t.completeFrom(configuredBuilders(ctx, log))
}

func (t *Target) completeFrom(builders []wrapper.Builder) {
	for _, b := range builders {
		if bt, err := Parse(b.URI); err == nil && bt.Dest == t.Dest && bt.Port == t.Port {
			t.WithBuilder(b)
			return
		}
	}
}

// configuredBuilders are the builders of the local Nix's configuration,
// nil when it cannot be asked.
func configuredBuilders(ctx context.Context, log *slog.Logger) []wrapper.Builder {
	h, err := nix.ReadHost(ctx)
	if err != nil {
		log.Debug("cannot read Nix's builders setting", "err", err)
		return nil
	}
	bs, err := wrapper.ParseBuilders(h.Settings["builders"], os.ReadFile)
	if err != nil {
		log.Debug("cannot read Nix's builders setting", "err", err)
	}
	return bs
}

// sshArgs are ssh's arguments as Nix 2.8 builds them (SSHMaster::
// startCommand, addCommonSSHOpts): HOST -x -a, then $NIX_SSHOPTS split at
// blanks, -i KEY, the known hosts file for the builder's public host key,
// -C; then the port, the tty choice and the remote command.
func (t *Target) sshArgs(sshOpts, knownHosts string, tty bool, command string) []string {
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
func (t *Target) knownHostsLine() (string, error) {
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

// URI is the URI to give `nbs shell --remote` for builder b: its own
// URI, with the key and host key of its line added as the SSH store's
// ssh-key and base64-ssh-public-host-key parameters, so that the command
// alone reaches the builder as Nix did.
func URI(b wrapper.Builder) string {
	u := b.URI
	t, err := Parse(u)
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
