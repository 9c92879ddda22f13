// Package sandbox re-creates Nix's Linux build sandbox around a copy of a
// kept build directory.
//
// One nbs binary plays two roles. The parent (the nbs the user started)
// copies the kept directory, builds a spec and re-executes /proc/self/exe
// with clone flags for new user, mount, IPC, network, UTS and PID
// namespaces: Go's runtime is multi-threaded, so unshare(CLONE_NEWUSER)
// from a running Go program fails with EINVAL, and the namespaces have to
// be created at spawn time. The child (ChildMain) then performs the set-up
// inside those namespaces, step by step, in the order Nix's runChild uses,
// and finally execs the build's shell, which becomes PID 1 of the sandbox
// exactly as Nix's builder does.
//
//	parent (host, caller's uid)                 child (uid 1000 in a new userns)
//	---------------------------                 --------------------------------
//	copy kept dir → work/build
//	clone(NEWUSER|NEWNS|…) + id maps  ───────►  read spec from fd 3
//	write spec (JSON) to fd 3                   lo up, hostname, mounts, pivot_root
//	                                  ◄───────  pty master over fd 5 (terminal only)
//	read fd 4 until EOF               ◄───────  step error as JSON on fd 4 (CLOEXEC)
//	relay terminal, wait                        drop caps, NNP, seccomp, execve(SHELL)
//	remove work dir
//
// Before any of it, a probe (probeArg0) is started the same way and
// only makes its mounts private: where the namespaces are refused, a
// sandboxed build cannot be entered and nbs says why; an unsandboxed
// one (sandbox = false) is entered without namespaces (modeNoNamespaces):
// the child is started as the build's user with no clone flags, skips
// every mount step and sets only the per-process state before execve.
package sandbox
