// Command nbs (nix-build-shell) makes failed Nix builds debuggable: it
// re-creates Nix's Linux build sandbox around a kept build directory and
// gives a shell, or runs one command, inside it.
package main

import (
	"os"

	"github.com/nix-build-shell/nbs/sandbox"
)

func main() {
	// The role is chosen before the CLI exists: the re-executed binary
	// that sets up the sandbox never parses flags.
	if sandbox.IsChild() {
		sandbox.ChildMain()
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
