package nix

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// BuildEnvOptions is what the builder's environment depends on besides
// the derivation.
type BuildEnvOptions struct {
	// Version is the Nix release whose rules apply.
	Version Version
	// BuildDir is the build directory inside the sandbox
	// (sandbox-build-dir, /build).
	BuildDir string
	// StoreDir is the store directory (/nix/store when empty).
	StoreDir string
	// Cores is NIX_BUILD_CORES (the `cores` setting).
	Cores int
	// Getenv gives impureEnvVars their values for fixed-output
	// derivations (Nix takes them from the daemon's environment).
	Getenv func(string) (string, bool)
	// References gives a store path's references, for
	// exportReferencesGraph; nil makes such a derivation an error.
	References func(path string) ([]string, error)
	// PathInfos gives the path infos of the closure of some store
	// paths, for exportReferencesGraph under structured attrs; nil
	// makes such a derivation an error.
	PathInfos func(roots []string) ([]PathInfo, error)
}

// BuildFile is a file Nix writes into the build directory before the
// builder starts (passAsFile, .attrs.json, .attrs.sh,
// exportReferencesGraph). Name is relative to the build directory.
type BuildFile struct {
	Name string
	Data []byte
}

// BuildEnv is what Nix hands a derivation's builder: its argv, its
// environment and the files in its build directory.
type BuildEnv struct {
	Argv  []string
	Env   []string // NAME=VALUE, sorted by name as Nix's std::map
	Files []BuildFile
}

// Get returns the value of name in the environment.
func (b *BuildEnv) Get(name string) (string, bool) {
	for _, kv := range b.Env {
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}

// NewBuildEnv computes the builder's argv, environment and build
// directory files the way Nix does before it starts the builder
// (DerivationGoal/LocalDerivationGoal::initEnv, initTmpDir and
// writeStructuredAttrs in src/libstore/build/local-derivation-goal.cc;
// DerivationBuilderImpl::initEnv in
// src/libstore/unix/build/derivation-builder.cc from 2.29; the
// exportReferencesGraph files in startBuilder). Every string the builder
// receives has the output placeholders replaced by the output paths, as
// in runChild's rewriteStrings(…, inputRewrites).
func NewBuildEnv(d *Derivation, o BuildEnvOptions) (*BuildEnv, error) {
	if o.BuildDir == "" {
		o.BuildDir = "/build"
	}
	if o.StoreDir == "" {
		o.StoreDir = StoreDir
	}
	rewrite := outputRewriter(d)
	env := map[string]string{
		// Shells set a default PATH when it is unset; HOME must not
		// point anywhere usable.
		"PATH":            "/path-not-set",
		"HOME":            "/homeless-shelter",
		"NIX_STORE":       o.StoreDir,
		"NIX_BUILD_CORES": strconv.Itoa(o.Cores),
	}
	var files []BuildFile
	raw, structured := d.Env["__json"]
	if !structured {
		// passAsFile attributes become files named after the hash of
		// their name (2.4+; a counter before).
		passAsFile := map[string]bool{}
		for _, n := range strings.Fields(d.Env["passAsFile"]) {
			passAsFile[n] = true
		}
		keys := make([]string, 0, len(d.Env))
		for k := range d.Env {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		fileNr := 0
		for _, k := range keys {
			v := d.Env[k]
			if !passAsFile[k] {
				env[k] = v
				continue
			}
			fn := ".attr-" + Nix32(sha256Sum(k))
			if !o.Version.AtLeast(2, 4, 0) {
				fn = ".attr-" + strconv.Itoa(fileNr)
				fileNr++
			}
			files = append(files, BuildFile{Name: fn, Data: []byte(rewrite(v))})
			env[k+"Path"] = o.BuildDir + "/" + fn
		}
		erg, err := exportReferencesGraph(d.Env["exportReferencesGraph"], o)
		if err != nil {
			return nil, err
		}
		files = append(files, erg...)
	} else {
		fs, err := structuredAttrsFiles(d, raw, rewrite, o)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
		// 2.4–2.12, 2.13.0–3 and 2.14 set these to the host's build
		// directory, which does not exist in the sandbox (Nix #6736);
		// the sandbox path, as later releases have it, is what
		// nixpkgs' setup.sh repairs them to anyway.
		if o.Version.AtLeast(2, 4, 0) {
			env["NIX_ATTRS_JSON_FILE"] = o.BuildDir + "/.attrs.json"
			env["NIX_ATTRS_SH_FILE"] = o.BuildDir + "/.attrs.sh"
		}
	}
	for _, k := range []string{"NIX_BUILD_TOP", "TMPDIR", "TEMPDIR", "TMP", "TEMP", "PWD"} {
		env[k] = o.BuildDir
	}
	if d.IsFixedOutput() {
		env["NIX_OUTPUT_CHECKED"] = "1"
		for _, k := range strings.Fields(d.Env["impureEnvVars"]) {
			v := ""
			if o.Getenv != nil {
				v, _ = o.Getenv(k)
			}
			env[k] = v
		}
	}
	env["NIX_LOG_FD"] = "2"
	env["TERM"] = "xterm-256color"

	b := &BuildEnv{Argv: []string{rewrite(d.Builder)}, Files: files}
	for _, a := range d.Args {
		b.Argv = append(b.Argv, rewrite(a))
	}
	names := make([]string, 0, len(env))
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		b.Env = append(b.Env, rewrite(k+"="+env[k]))
	}
	sort.Slice(b.Files, func(i, j int) bool { return b.Files[i].Name < b.Files[j].Name })
	return b, nil
}

// HashPlaceholder is what builtins.placeholder returns for an output:
// "/" and the nix-base32 SHA-256 of "nix-output:NAME" (hashPlaceholder
// in src/libstore/derivations.cc).
func HashPlaceholder(output string) string {
	return "/" + Nix32(sha256Sum("nix-output:"+output))
}

// outputRewriter replaces each output's placeholder by its path.
func outputRewriter(d *Derivation) func(string) string {
	var pairs []string
	for _, o := range d.Outputs {
		if o.Path != "" {
			pairs = append(pairs, HashPlaceholder(o.Name), o.Path)
		}
	}
	if len(pairs) == 0 {
		return func(s string) string { return s }
	}
	return strings.NewReplacer(pairs...).Replace
}

func sha256Sum(s string) []byte {
	h := sha256.Sum256([]byte(s))
	return h[:]
}

// nix32Chars is Nix's base-32 alphabet (no e, o, t, u).
const nix32Chars = "0123456789abcdfghijklmnpqrsvwxyz"

// Nix32 encodes b in Nix's base 32 (printHash32 in src/libutil/hash.cc):
// the last 5-bit group first.
func Nix32(b []byte) string {
	n := (len(b)*8-1)/5 + 1
	out := make([]byte, 0, n)
	for i := n - 1; i >= 0; i-- {
		bit := i * 5
		j, k := bit/8, uint(bit%8)
		c := b[j] >> k
		if j+1 < len(b) {
			c |= b[j+1] << (8 - k)
		}
		out = append(out, nix32Chars[c&0x1f])
	}
	return string(out)
}

var ergFileName = LazyRegexp(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// exportReferencesGraph writes, for each NAME PATH pair, the closure of
// PATH to the file NAME in the format of `nix-store --register-validity`
// without derivers or hashes (makeValidityRegistration(…, false, false)).
func exportReferencesGraph(attr string, o BuildEnvOptions) ([]BuildFile, error) {
	ws := strings.Fields(attr)
	if len(ws) == 0 {
		return nil, nil
	}
	if len(ws)%2 != 0 {
		return nil, fmt.Errorf("exportReferencesGraph: odd number of words %q", attr)
	}
	if o.References == nil {
		return nil, fmt.Errorf("exportReferencesGraph: no way to ask the store for references")
	}
	var files []BuildFile
	for i := 0; i < len(ws); i += 2 {
		name, p := ws[i], ws[i+1]
		if !ergFileName().MatchString(name) {
			return nil, fmt.Errorf("exportReferencesGraph: invalid file name %q", name)
		}
		if !strings.HasPrefix(p, o.StoreDir+"/") {
			return nil, fmt.Errorf("exportReferencesGraph: %q is not in the Nix store", p)
		}
		root := StorePathOf(p)
		refs := map[string][]string{}
		todo := []string{root}
		for len(todo) > 0 {
			q := todo[len(todo)-1]
			todo = todo[:len(todo)-1]
			if _, ok := refs[q]; ok {
				continue
			}
			rs, err := o.References(q)
			if err != nil {
				return nil, fmt.Errorf("exportReferencesGraph %s: %w", name, err)
			}
			sort.Strings(rs)
			refs[q] = rs
			todo = append(todo, rs...)
		}
		paths := make([]string, 0, len(refs))
		for q := range refs {
			paths = append(paths, q)
		}
		sort.Strings(paths)
		var buf bytes.Buffer
		for _, q := range paths {
			fmt.Fprintf(&buf, "%s\n\n%d\n", q, len(refs[q]))
			for _, r := range refs[q] {
				buf.WriteString(r + "\n")
			}
		}
		files = append(files, BuildFile{Name: name, Data: buf.Bytes()})
	}
	return files, nil
}

// structuredGraph is the value of the attribute name of an
// exportReferencesGraph under structured attrs: the closure of the
// store paths v names (a string or a list of them), each path's info
// as a JSON object (ParsedDerivation::prepareStructuredAttrs and
// Store::pathInfoToJSON(…, false, true) in src/libstore/
// parsed-derivations.cc and store-api.cc up to 2.18; pathInfoToJSON in
// parsed-derivations.cc from 2.19): path, narHash in nix-base32,
// narSize, references, ca when content-addressed, closureSize, and
// from 2.15 "valid": true.
func structuredGraph(name string, v any, o BuildEnvOptions) ([]any, error) {
	var roots []string
	add := func(e any) error {
		p, ok := e.(string)
		if !ok {
			return fmt.Errorf("exportReferencesGraph.%s: %v is not a store path", name, e)
		}
		if !strings.HasPrefix(p, o.StoreDir+"/") {
			return fmt.Errorf("exportReferencesGraph.%s: %q is not in the Nix store", name, p)
		}
		roots = append(roots, StorePathOf(p))
		return nil
	}
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			if err := add(e); err != nil {
				return nil, err
			}
		}
	default:
		if err := add(v); err != nil {
			return nil, err
		}
	}
	if len(roots) == 0 {
		return []any{}, nil
	}
	if o.PathInfos == nil {
		return nil, fmt.Errorf("exportReferencesGraph: no way to ask the store for path infos")
	}
	infos, err := o.PathInfos(roots)
	if err != nil {
		return nil, fmt.Errorf("exportReferencesGraph.%s: %w", name, err)
	}
	byPath := make(map[string]*PathInfo, len(infos))
	for i := range infos {
		byPath[infos[i].Path] = &infos[i]
	}
	// The closure of the roots, in the store's order (sorted).
	closure := map[string]bool{}
	todo := slices.Clone(roots)
	for len(todo) > 0 {
		p := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if closure[p] {
			continue
		}
		info, ok := byPath[p]
		if !ok {
			return nil, fmt.Errorf("exportReferencesGraph.%s: no path info of %s", name, p)
		}
		closure[p] = true
		todo = append(todo, info.References...)
	}
	paths := make([]string, 0, len(closure))
	for p := range closure {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	graph := make([]any, 0, len(paths))
	for _, p := range paths {
		info := byPath[p]
		refs := make([]any, len(info.References))
		for i, r := range info.References {
			refs[i] = r
		}
		obj := map[string]any{
			"path":        p,
			"narHash":     info.NarHash,
			"narSize":     info.NarSize,
			"references":  refs,
			"closureSize": closureSize(p, byPath),
		}
		if info.CA != "" {
			obj["ca"] = info.CA
		}
		if o.Version.AtLeast(2, 15, 0) {
			obj["valid"] = true
		}
		graph = append(graph, obj)
	}
	return graph, nil
}

// closureSize is the sum of the NAR sizes of the closure of p
// (Store::getClosureSize).
func closureSize(p string, byPath map[string]*PathInfo) uint64 {
	seen := map[string]bool{}
	var sum uint64
	todo := []string{p}
	for len(todo) > 0 {
		q := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		if seen[q] {
			continue
		}
		seen[q] = true
		if info, ok := byPath[q]; ok {
			sum += info.NarSize
			todo = append(todo, info.References...)
		}
	}
	return sum
}

var shVarName = LazyRegexp(`^[A-Za-z_][A-Za-z0-9_]*$`)

// structuredAttrsFiles are .attrs.json (the attributes plus "outputs")
// and .attrs.sh (the attributes bash can represent), as Nix's
// writeStructuredAttrs writes them.
func structuredAttrsFiles(d *Derivation, raw string, rewrite func(string) string, o BuildEnvOptions) ([]BuildFile, error) {
	dec := json.NewDecoder(strings.NewReader(raw))
	dec.UseNumber()
	var attrs map[string]any
	if err := dec.Decode(&attrs); err != nil || attrs == nil {
		return nil, fmt.Errorf("__json is not a JSON object: %v", err)
	}
	outputs := map[string]any{}
	for _, o := range d.Outputs {
		outputs[o.Name] = rewrite(HashPlaceholder(o.Name))
	}
	attrs["outputs"] = outputs
	if erg, ok := attrs["exportReferencesGraph"].(map[string]any); ok {
		for name, v := range erg {
			graph, err := structuredGraph(name, v, o)
			if err != nil {
				return nil, err
			}
			attrs[name] = graph
		}
	}
	js, err := dumpJSON(attrs)
	if err != nil {
		return nil, err
	}
	keys := make([]string, 0, len(attrs))
	for k := range attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sh strings.Builder
	for _, k := range keys {
		if !shVarName().MatchString(k) {
			continue
		}
		v := attrs[k]
		if s, ok := shSimple(v); ok {
			fmt.Fprintf(&sh, "declare %s=%s\n", k, s)
			continue
		}
		switch v := v.(type) {
		case []any:
			var b strings.Builder
			good := true
			for _, e := range v {
				s, ok := shSimple(e)
				if !ok {
					good = false
					break
				}
				b.WriteString(s + " ")
			}
			if good {
				fmt.Fprintf(&sh, "declare -a %s=(%s)\n", k, b.String())
			}
		case map[string]any:
			ks := make([]string, 0, len(v))
			for kk := range v {
				ks = append(ks, kk)
			}
			sort.Strings(ks)
			var b strings.Builder
			good := true
			for _, kk := range ks {
				s, ok := shSimple(v[kk])
				if !ok {
					good = false
					break
				}
				fmt.Fprintf(&b, "[%s]=%s ", shellEscape(kk), s)
			}
			if good {
				fmt.Fprintf(&sh, "declare -A %s=(%s)\n", k, b.String())
			}
		}
	}
	return []BuildFile{
		{Name: ".attrs.json", Data: []byte(rewrite(js))},
		{Name: ".attrs.sh", Data: []byte(rewrite(sh.String()))},
	}, nil
}

// shSimple is handleSimpleType of writeStructuredAttrs: strings quoted,
// integral numbers as integers, null as an empty quoted string,
// booleans as 1 or empty.
func shSimple(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return shellEscape(v), true
	case json.Number:
		f, err := strconv.ParseFloat(string(v), 64)
		if err != nil || math.Ceil(f) != f || math.IsInf(f, 0) {
			return "", false
		}
		return strconv.FormatInt(int64(f), 10), true
	case nil:
		return "''", true
	case bool:
		if v {
			return "1", true
		}
		return "", true
	}
	return "", false
}

// shellEscape is Nix's: single quotes, ' as '\”.
func shellEscape(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// dumpJSON writes v as nlohmann's json::dump() does: compact, object
// keys sorted, non-ASCII as is, only control characters, " and \
// escaped.
func dumpJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return "", fmt.Errorf("encode .attrs.json: %w", err)
	}
	s := strings.TrimSuffix(buf.String(), "\n")
	// Go escapes U+2028 and U+2029; nlohmann does not.
	s = strings.NewReplacer(`\u2028`, "\u2028", `\u2029`, "\u2029").Replace(s)
	return s, nil
}
