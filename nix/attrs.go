package nix

import (
	"encoding/json"
	"fmt"
	"sort"
)

// A structured-attrs derivation (__structuredAttrs = true) passes its
// attributes not as environment variables but in two files Nix writes
// into the build directory (LocalDerivationGoal::writeStructuredAttrs,
// DerivationBuilder since 2.29): .attrs.json, every attribute plus
// "outputs": {name: path}, and .attrs.sh, the same as bash `declare`
// lines. Both are in the build directory's top in every version that has
// them (2.4+). NIX_ATTRS_JSON_FILE and NIX_ATTRS_SH_FILE point at them:
// at the host path of the build directory in 2.4–2.13.3 and 2.14
// (NixOS/nix#6736), at /build/.attrs.* from 2.13.4 and 2.15. nixpkgs'
// setup.sh repairs a variable whose file does not exist to
// $NIX_BUILD_TOP/.attrs.* and exports the outputs, so env-vars has out
// but not name or stdenv.

// StructuredAttrs is a parsed .attrs.json.
type StructuredAttrs struct {
	attrs map[string]json.RawMessage
}

// ReadStructuredAttrs reads .attrs.json (see readFile for what it refuses).
func ReadStructuredAttrs(path string) (*StructuredAttrs, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, err
	}
	a, err := ParseStructuredAttrs(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}

// ParseStructuredAttrs parses the content of .attrs.json: a JSON object.
func ParseStructuredAttrs(data []byte) (*StructuredAttrs, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON object")
	}
	return &StructuredAttrs{attrs: m}, nil
}

// String returns attribute name when it is a string.
func (a *StructuredAttrs) String(name string) (string, bool) {
	var s string
	raw, ok := a.attrs[name]
	if !ok || json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// Outputs returns the outputs' paths by name.
func (a *StructuredAttrs) Outputs() map[string]string {
	var o map[string]string
	if raw, ok := a.attrs["outputs"]; ok {
		json.Unmarshal(raw, &o)
	}
	return o
}

// Strings returns every string in the attributes (nested in lists and
// objects too), in a stable order: where a derivation's store paths are.
func (a *StructuredAttrs) Strings() []string {
	names := make([]string, 0, len(a.attrs))
	for n := range a.attrs {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		var v any
		if json.Unmarshal(a.attrs[n], &v) == nil {
			out = appendStrings(out, v, 0)
		}
	}
	return out
}

func appendStrings(out []string, v any, depth int) []string {
	if depth > 64 {
		return out
	}
	switch v := v.(type) {
	case string:
		out = append(out, v)
	case []any:
		for _, e := range v {
			out = appendStrings(out, e, depth+1)
		}
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = appendStrings(out, v[k], depth+1)
		}
	}
	return out
}
