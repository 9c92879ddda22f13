package wrapper

import (
	"fmt"
	"os"

	"github.com/nix-build-shell/nbs/sandbox/term"
)

// openPTY opens a new pty pair from the host's devpts: master for nbs,
// slave (in raw mode, so that nothing is translated on the way) for
// nix-build's stderr. Neither becomes a controlling terminal.
func openPTY() (master, slave *os.File, err error) {
	master, slave, err = term.OpenPTY("/dev/ptmx")
	if err != nil {
		return nil, nil, err
	}
	if _, err := term.MakeRaw(slave); err != nil {
		master.Close()
		slave.Close()
		return nil, nil, fmt.Errorf("make %s raw: %w", slave.Name(), err)
	}
	return master, slave, nil
}
