package wrapper

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"strings"
)

// Builder is one remote builder as Nix's builders setting describes it
// (nix.conf(5), "builders"; also the lines of /etc/nix/machines):
//
//	URI SYSTEMS SSH-KEY MAX-JOBS SPEED-FACTOR SUPPORTED-FEATURES MANDATORY-FEATURES PUBLIC-HOST-KEY
//
// Every field after the URI is optional, and "-" means its default.
type Builder struct {
	// URI as Nix prints it in "building '…' on 'URI'": a bare host name
	// gets "ssh://" in front, as Nix's Machine constructor does.
	URI string
	// Fields are the rest of the line, verbatim.
	Fields []string
}

// field returns field n (1: SYSTEMS … 7: PUBLIC-HOST-KEY) of the line
// after the URI, "" when it is missing or "-".
func (b Builder) field(n int) string {
	if n-1 >= len(b.Fields) || b.Fields[n-1] == "-" {
		return ""
	}
	return b.Fields[n-1]
}

// Key is the SSH private key Nix passes to ssh with -i ("" for none).
func (b Builder) Key() string { return b.field(2) }

// HostKey is the base64-encoded public host key Nix writes to a known
// hosts file of its own ("" for none).
func (b Builder) HostKey() string { return b.field(7) }

// Line is the builder as one line of the builders setting.
func (b Builder) Line() string {
	return strings.Join(append([]string{b.URI}, b.Fields...), " ")
}

// maxInclude bounds the nesting of @FILE lines; Nix has no bound, but a
// file that includes itself is a mistake better reported than followed.
const maxInclude = 8

// ParseBuilders reads a value of the builders setting the way Nix
// (2.3 to 2.34, expandBuilderLines and parseBuilderLine) does: lines are
// separated by newlines or ';', '#' starts a comment, fields are separated
// by blanks, and a line "@FILE" stands for the lines of FILE (a missing
// FILE holds none). readFile reads FILE (os.ReadFile).
func ParseBuilders(value string, readFile func(string) ([]byte, error)) ([]Builder, error) {
	return parseBuilders(value, readFile, 0)
}

func parseBuilders(value string, readFile func(string) ([]byte, error), depth int) ([]Builder, error) {
	var out []Builder
	for _, line := range strings.FieldsFunc(value, func(r rune) bool { return r == '\n' || r == ';' }) {
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if file, ok := strings.CutPrefix(line, "@"); ok {
			file = strings.TrimSpace(file)
			if depth >= maxInclude {
				return nil, fmt.Errorf("read builders from %s: more than %d nested @FILE lines", file, maxInclude)
			}
			b, err := readFile(file)
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("read builders: %w", err)
			}
			more, err := parseBuilders(string(b), readFile, depth+1)
			if err != nil {
				return nil, err
			}
			out = append(out, more...)
			continue
		}
		f := strings.Fields(line)
		out = append(out, Builder{URI: normalURI(f[0]), Fields: f[1:]})
	}
	return out, nil
}

// normalURI is the URI as Nix's Machine has it: a scheme-less host name
// that is not a path or one of Nix's store words becomes ssh://HOST.
func normalURI(u string) string {
	if strings.Contains(u, "://") || strings.Contains(u, "/") {
		return u
	}
	for _, w := range []string{"auto", "daemon", "local"} {
		if u == w || strings.HasPrefix(u, w+"?") {
			return u
		}
	}
	if strings.HasPrefix(u, "?") {
		return u
	}
	return "ssh://" + u
}

// keepFailedOption is what a builder's Nix needs on its command line to
// keep a failed build's directory.
const keepFailedOption = "--option keep-failed true"

// KeepFailedURI returns uri changed so that the builder keeps the build
// directory of a failed build, and whether it changed it.
//
// Nix forwards --keep-failed to an ssh:// builder only when that builder
// builds as root without a daemon, and never to an ssh-ng:// builder (its
// SSHStore::setOptions forwards nothing, in 2.8 as in 2.34). What works is
// the remote command itself: Nix runs "REMOTE-PROGRAM --serve --write"
// (ssh://, default nix-store) or "REMOTE-PROGRAM --stdio" (ssh-ng://,
// default nix-daemon) on the builder, so the option goes into the
// remote-program parameter:
//
//	ssh-ng://HOST → ssh-ng://HOST?remote-program=nix-daemon%20--option%20keep-failed%20true
//	ssh://HOST    → ssh://HOST?remote-program=nix-store%20--option%20keep-failed%20true
//
// A remote-program the user set keeps its value, with the option appended;
// the other parameters stay as they were written. Other stores (local,
// daemon, unix://…) are returned unchanged.
func KeepFailedURI(uri string) (string, bool) {
	var program string
	switch {
	case strings.HasPrefix(uri, "ssh://"):
		program = "nix-store"
	case strings.HasPrefix(uri, "ssh-ng://"):
		program = "nix-daemon"
	default:
		return uri, false
	}
	base, query, _ := strings.Cut(uri, "?")
	var params []string
	if query != "" {
		params = strings.Split(query, "&")
	}
	found := false
	for i, p := range params {
		name, value, _ := strings.Cut(p, "=")
		if percentDecode(name) != "remote-program" {
			continue
		}
		found = true
		v := percentDecode(value)
		if strings.Contains(v, "keep-failed") {
			return uri, false // the user decided already
		}
		params[i] = name + "=" + percentEncode(v+" "+keepFailedOption)
	}
	if !found {
		params = append(params, "remote-program="+percentEncode(program+" "+keepFailedOption))
	}
	return base + "?" + strings.Join(params, "&"), true
}

// SameBuilder reports whether printed, a builder URI as a Nix log prints
// it, is b, with or without the change KeepFailedURI makes.
func (b Builder) SameBuilder(printed string) bool {
	if printed == b.URI {
		return true
	}
	k, _ := KeepFailedURI(b.URI)
	return sameURI(printed, k) || sameURI(printed, b.URI)
}

// sameURI compares two store URIs as Nix may print them: newer releases
// print the query parameters sorted, not as written.
func sameURI(a, b string) bool {
	if a == b {
		return true
	}
	ua, err1 := url.Parse(a)
	ub, err2 := url.Parse(b)
	if err1 != nil || err2 != nil || ua.Scheme != ub.Scheme || ua.User.String() != ub.User.String() ||
		ua.Host != ub.Host || ua.Path != ub.Path || ua.Opaque != ub.Opaque {
		return false
	}
	qa, qb := ua.Query(), ub.Query()
	if len(qa) != len(qb) {
		return false
	}
	for k, va := range qa {
		vb := qb[k]
		if len(va) != len(vb) {
			return false
		}
		for i := range va {
			if va[i] != vb[i] {
				return false
			}
		}
	}
	return true
}

// RewriteBuilders returns value (a builders setting) with every ssh:// and
// ssh-ng:// builder changed by KeepFailedURI, @FILE lines expanded, and
// the builders it read. changed is false when no builder needed a change;
// value is then returned as it was.
func RewriteBuilders(value string, readFile func(string) ([]byte, error)) (out string, builders []Builder, changed bool, err error) {
	builders, err = ParseBuilders(value, readFile)
	if err != nil {
		return value, nil, false, err
	}
	lines := make([]string, len(builders))
	for i, b := range builders {
		nb := b
		if u, ok := KeepFailedURI(b.URI); ok {
			nb.URI, changed = u, true
		}
		lines[i] = nb.Line()
	}
	if !changed {
		return value, builders, false, nil
	}
	return strings.Join(lines, " ; "), builders, true, nil
}

// percentDecode undoes %XX escapes as Nix's decodeQuery does; a malformed
// escape is kept as it is.
func percentDecode(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// percentEncode escapes what would break a builder line or a query: blanks
// (field separators), ';' and newlines (line separators), '#' (comment),
// '&', '=', '%', '?' and anything not plain ASCII.
func percentEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~/:@,+", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	return b.String()
}

// URIParam is the value of the parameter name in a store URI's query,
// percent-decoded as Nix's decodeQuery does ('+' stays '+'); "" when it
// is absent.
func URIParam(uri, name string) string {
	_, query, ok := strings.Cut(uri, "?")
	if !ok {
		return ""
	}
	for _, p := range strings.Split(query, "&") {
		n, v, _ := strings.Cut(p, "=")
		if percentDecode(n) == name {
			return percentDecode(v)
		}
	}
	return ""
}

// WithURIParam returns uri with the parameter name=value added, the value
// percent-encoded so that the URI stays one field of a builder line.
func WithURIParam(uri, name, value string) string {
	sep := "?"
	if strings.Contains(uri, "?") {
		sep = "&"
	}
	return uri + sep + name + "=" + percentEncode(value)
}
