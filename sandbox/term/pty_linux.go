package term

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// OpenPTY opens a new pty pair from the devpts instance whose ptmx is
// given ("/dev/ptmx" for the host's; a sandbox passes its own instance's,
// so that the pty belongs to the sandbox). The master is in the runtime's
// poller (read deadlines work); the slave, "/dev/pts/N" of the same
// instance, is a plain blocking descriptor, fit to become a command's
// stdio. Neither becomes a controlling terminal; both are close-on-exec.
func OpenPTY(ptmx string) (master, slave *os.File, err error) {
	master, err = os.OpenFile(ptmx, os.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err // *PathError: "open /dev/ptmx: …"
	}
	var n int
	err = control(master, func(fd int) error {
		if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
			return fmt.Errorf("unlock pty: %w", err)
		}
		var err error
		if n, err = unix.IoctlGetInt(fd, unix.TIOCGPTN); err != nil {
			return fmt.Errorf("get pty number: %w", err)
		}
		return nil
	})
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	// Not os.OpenFile: it would make the slave non-blocking for the
	// poller, and a shell whose stdin is non-blocking fails its reads.
	name := fmt.Sprintf("/dev/pts/%d", n)
	fd, err := unix.Open(name, unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		master.Close()
		return nil, nil, fmt.Errorf("open %s: %w", name, err)
	}
	return master, os.NewFile(uintptr(fd), name), nil
}
