package remote

import (
	"fmt"
	"os"
	"strings"

	"github.com/nix-build-shell/nbs/nix"
)

// CheckShipped is the builder's side of a Replay: the derivation in
// file must be one Nix could have sent (no input derivations, which the
// builder does not have), and every input and the builder must exist
// here. Nix copied them for the original build; a garbage collection on
// the builder may have removed some since, and the error names them.
func CheckShipped(file, drv string) error {
	d, err := nix.ReadDerivation(file)
	if err != nil {
		return err
	}
	if len(d.InputDrvs) > 0 {
		return fmt.Errorf("%s: the derivation sent for %s still has input derivations, which this machine does not have", file, nix.DrvName(drv))
	}
	var missing []string
	seen := map[string]bool{}
	for _, p := range append(append([]string{}, d.InputSrcs...), d.Builder) {
		if seen[p] {
			continue
		}
		seen[p] = true
		if _, err := os.Lstat(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	host, _ := os.Hostname()
	return &Error{
		fmt.Errorf("%s: %d of the build's inputs are not on this builder (%s): %s", nix.DrvName(drv), len(missing), host, strings.Join(missing, " ")),
		"build it on this builder again (Nix copies the inputs there), then replay it",
	}
}
