package sandbox

// spec is everything the child needs to build the sandbox: compiled
// into its program (compileSandbox), or, for nbs attach, encoded as JSON
// on an inherited pipe.
type spec struct {
	// Root is the host directory that becomes "/" (empty, owned by the
	// sandbox user).
	Root string `json:"root"`
	// Mounts is the mount plan, applied in order below Root.
	Mounts []Op `json:"mounts"`
	// View, when set, is mounted before the plan: a copy-on-write view
	// of the kept directory where the plan expects the copy.
	View *viewSpec `json:"view,omitempty"`

	// Argv and Env are what the final execve receives; Argv[0] is an
	// absolute path inside the sandbox, unless Exe is set: then Exe is
	// the program and Argv[0] only its name (Nix gives a builder the
	// base name of its path).
	Argv []string `json:"argv"`
	Exe  string   `json:"exe,omitempty"`
	Env  []string `json:"env"`
	// Cwd is the working directory inside the sandbox (Nix: /build).
	Cwd string `json:"cwd"`
	// RC, when set, is handed to the shell as fd 3 (a memfd), for
	// `bash --rcfile /dev/fd/3`: an interactive shell's start-up file
	// that exists nowhere in the sandbox's file system.
	RC string `json:"rc,omitempty"`

	Hostname   string `json:"hostname"`
	Domainname string `json:"domainname"`
	// HostNetwork keeps the host's network (Nix does this for
	// fixed-output derivations); otherwise the child owns a new network
	// namespace holding only lo.
	HostNetwork bool `json:"hostNetwork,omitempty"`

	// Unsandboxed re-creates a build that ran without Nix's sandbox
	// (sandbox = false): no namespaces but user, mount and PID ones, the
	// host's file system with only the plan's binds on top (Root is
	// "/"), the caller's own ids.
	Unsandboxed bool `json:"unsandboxed,omitempty"`
	// NoNamespaces (with Unsandboxed) is the same build where no
	// namespace can be made: the child only sets the per-process state
	// and execs, on the host as it is; Mounts is empty.
	NoNamespaces bool `json:"noNamespaces,omitempty"`

	// Attach: the child is already inside a running build (Attach in
	// attach_linux.go joined its namespaces and root); it only sets up
	// the terminal and the per-process state, and finds Argv[0] on the
	// build's PATH.
	Attach bool `json:"attach,omitempty"`
	// Tools (Attach only) are store paths to add to a private copy of
	// the build's mount namespace, their detached mounts on toolFD,
	// toolFD+1, … in this order (nbs attach --with).
	Tools []string `json:"tools,omitempty"`

	// TTY makes the child open a pty in the sandbox's own devpts, send
	// the master to the parent and use the slave as its controlling
	// terminal and stdio.
	TTY bool `json:"tty,omitempty"`

	// Seccomp is the syscall filter Nix's filter-syscalls installs; nil
	// means none. NoNewPrivs mirrors !allow-new-privileges.
	Seccomp    *SeccompProfile `json:"seccomp,omitempty"`
	NoNewPrivs bool            `json:"noNewPrivs,omitempty"`
}

// SeccompProfile selects the rules of Nix's setupSeccomp that differ
// between Nix releases (setupSeccomp in Nix's
// src/libstore/linux/build/linux-derivation-builder.cc; in
// src/libstore/build/local-derivation-goal.cc in older releases).
type SeccompProfile struct {
	// Fchmodat2 adds fchmodat2 (2.22+, backported to 2.18.3–2.18.9).
	Fchmodat2 bool `json:"fchmodat2,omitempty"`
	// GetXattr makes getxattr and friends fail with ENOTSUP (2.24+).
	GetXattr bool `json:"getxattr,omitempty"`
	// ListXattr makes listxattr and friends fail with ENOTSUP (2.35+).
	ListXattr bool `json:"listxattr,omitempty"`
}

// viewSpec is the copy-on-write view the child mounts on Target (the
// work directory's build/, a host path) before the mount plan runs.
type viewSpec struct {
	// Lower is the kept directory; with LowerFD set it arrives instead
	// as a detached, idmapped mount (viewFiles.fd), attached on Lower
	// (the work directory's lower/).
	Lower   string `json:"lower"`
	LowerFD bool   `json:"lowerFD,omitempty"`
	// Above are the layers above Lower, top first: the changes of kept
	// sessions (nbs shell KEPT), each an earlier view's upper directory.
	Above []string `json:"above,omitempty"`
	// FUSE: the view is a FUSE file system that the parent's
	// fuse-overlayfs serves; the child mounts it from a /dev/fuse of
	// its own and sends the device to the parent.
	FUSE bool `json:"fuse,omitempty"`
	// HostIDs: the sandbox keeps the caller's own ids (Unsandboxed), so
	// the FUSE view shows its files as the caller's instead of 1000:100.
	HostIDs bool   `json:"hostIDs,omitempty"`
	Upper   string `json:"upper"`
	Work    string `json:"work"`
	Target  string `json:"target"`
}
