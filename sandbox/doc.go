// Package sandbox re-creates Nix's Linux build sandbox around a copy of a
// kept build directory.
//
// One nbs binary plays two roles. The parent (the nbs the user started)
// re-executes /proc/self/exe with clone flags for new user, mount, IPC,
// network, UTS and PID namespaces (Go's runtime is multi-threaded, so
// unshare(CLONE_NEWUSER) from a running Go program fails with EINVAL, and
// the namespaces have to be created at spawn time), and while that child
// starts, views or copies the kept directory and builds a spec. The child
// (ChildMain) then performs the set-up inside those namespaces, step by
// step, in the order Nix's runChild uses, and finally execs the build's
// shell, which becomes PID 1 of the sandbox exactly as Nix's builder does.
//
//	parent (host, caller's uid)                 child (uid 1000 in a new userns)
//	---------------------------                 --------------------------------
//	clone(NEWUSER|NEWNS|…) + id maps  ───────►  nbs's runtime starts
//	view or copy kept dir → work/build
//	view's descriptors on fd 6                  read spec from fd 3 (and fd 6)
//	write spec (JSON) to fd 3                   lo up, hostname, mounts, pivot_root
//	                                  ◄───────  pty master over fd 5 (terminal only)
//	read fd 4 until EOF               ◄───────  step error as JSON on fd 4 (CLOEXEC)
//	relay terminal, wait                        drop caps, NNP, seccomp, execve(SHELL)
//	remove work dir
//
// For an unsandboxed build (sandbox = false), a probe (probeArg0) is
// started the same way before any of it and only makes its mounts
// private: where the namespaces are refused, the build is entered
// without them. A sandboxed build has no other way in: its own start is
// the probe, and only when that fails as a refusal would is the probe
// run, to say which restriction it is and what lifts it. Without
// namespaces (modeNoNamespaces) the child is started as the build's
// user with no clone flags, skips every mount step and sets only the
// per-process state before execve.
package sandbox
