// Package wrapper runs nix-build for nbs build and finds what failed and where it was kept.
//
// Run starts nix-build (or `nix build`) with the caller's terminal, copies
// its stderr through unchanged while a Scanner reads the same bytes, and
// watches the build-dir roots for new build directories. The Scanner knows
// the log lines of Nix 2.3 to 2.34 that matter here:
//
//	building '/nix/store/…-NAME.drv'...                      (local)
//	building '/nix/store/…-NAME.drv' on 'ssh://HOST'...      (remote)
//	note: keeping build directory '/tmp/nix-build-NAME.drv-0'        (≤2.33)
//	note: keeping build directory "/nix/var/nix/builds/nix-PID-N/build" (2.34+)
//	error: builder for '/nix/store/…-NAME.drv' failed with exit code 3 (≤2.28)
//	error: Cannot build '/nix/store/…-NAME.drv'.                      (2.29+)
//	       Reason: builder failed with exit code 3.
//	error: build of '…drv' on 'ssh://HOST' failed: builder for '…drv' failed with exit code 3
//	warning: The failed build directory was kept on the remote builder due to `--keep-failed`. (2.30+)
//
// testdata/README.md says which logs were captured from a real Nix and how.
package wrapper
