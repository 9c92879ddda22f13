// Package sandbox re-creates Nix's Linux build sandbox around a copy of a
// kept build directory.
//
// The parent (the nbs the user started) views or copies the kept
// directory and builds a spec, then compiles the spec into a program of
// system calls (compileSandbox): paths as C strings, the kernel's
// structures laid out, every choice made. It forks a child by hand with
// clone flags for new user, mount, IPC, network, UTS and PID namespaces
// (Go's runtime is multi-threaded, so unshare(CLONE_NEWUSER) from a
// running Go program fails with EINVAL, and the namespaces have to be
// created at the fork), and the child runs the program with raw system
// calls only, no Go runtime of its own (runProg): the set-up in the
// order Nix's runChild uses, ending in execve of the build's shell, which
// becomes PID 1 of the sandbox exactly as Nix's builder does.
//
//	parent (host, caller's uid)                 child (uid 1000 in a new userns)
//	---------------------------                 --------------------------------
//	view or copy kept dir → work/build
//	compile spec → program
//	clone(NEWUSER|NEWNS|…)            ───────►  (a copy of the parent's memory)
//	write id maps, a byte on sync     ───────►  ids, parent-death signal
//	                                            lo up, hostname, mounts, pivot_root
//	serve the FUSE view               ◄───────  /dev/fuse over a socket (FUSE view only)
//	                                  ◄───────  pty master over a socket (terminal only)
//	read the error pipe until EOF     ◄───────  failed call's index and errno (CLOEXEC)
//	relay terminal, wait                        drop caps, NNP, seccomp, execve(SHELL)
//	remove work dir
//
// nbs attach (attach_linux.go) is the one start that re-executes nbs
// (childArg0) inside the sandbox: it reads the running build's store and
// PATH in Go, then runs the same program's terminal and exec steps.
//
// For an unsandboxed build (sandbox = false), a probe (probeArg0) is
// started the same way before any of it and only makes its mounts
// private: where the namespaces are refused, the build is entered
// without them. A sandboxed build has no other way in: its own start is
// the probe, and only when that fails as a refusal would is the probe
// run, to say which restriction it is and what lifts it (a copy, which
// may take minutes, is preceded by the probe). Without namespaces
// (modeNoNamespaces) the child is forked as the build's user with no
// clone flags, skips every mount step and sets only the per-process
// state before execve.
package sandbox
