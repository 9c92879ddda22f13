package wrapper

import (
	"path/filepath"
	"strings"
)

// WithFeatures returns args for the new CLI (program "nix") with
// "--extra-experimental-features 'FEATURES'" added right after "build",
// for this call only: nix-command and flakes are experimental from Nix 2.4
// on (still in 2.34), and `nix build .#pkg` fails without them unless
// nix.conf enables them. Nothing is added for nix-build, for an empty
// features, or when the user set experimental-features themselves (their
// choice stands); an --extra-experimental-features of theirs adds to ours.
func WithFeatures(program string, args []string, features []string) []string {
	if len(features) == 0 || filepath.Base(program) != "nix" {
		return args
	}
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		if a == "--experimental-features" || a == "--option" && i+1 < len(args) && args[i+1] == "experimental-features" {
			return args
		}
		i += argsTaken[a]
	}
	return insertOptions(program, args, "--extra-experimental-features", strings.Join(features, " "))
}
