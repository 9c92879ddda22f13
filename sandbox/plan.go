package sandbox

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// OpKind names one kind of step of the mount plan.
type OpKind string

// The steps a mount plan is made of. The child runs them in one loop
// (applyOp), bubblewrap-style.
const (
	OpMkdir   OpKind = "mkdir"   // directory Target with Mode
	OpFile    OpKind = "file"    // file Target with Mode and contents Data
	OpSymlink OpKind = "symlink" // symlink Target pointing to Source
	OpBind    OpKind = "bind"    // bind host Source on Target (file or dir, made to match)
	OpRebind  OpKind = "rebind"  // bind Source, a path inside the sandbox made by an earlier step, on Target
	OpMount   OpKind = "mount"   // new file system FSType on Target with options Data
	OpChmod   OpKind = "chmod"   // chmod Target to Mode
)

func (k OpKind) String() string { return string(k) }

// Op is one step of the mount plan. Target is a path inside the sandbox.
type Op struct {
	Kind   OpKind `json:"kind"`
	Source string `json:"source,omitempty"`
	Target string `json:"target"`
	FSType string `json:"fstype,omitempty"`
	Data   string `json:"data,omitempty"`
	Mode   uint32 `json:"mode,omitempty"`
	// Recursive binds submounts too (MS_REC); ReadOnly makes the bind
	// read-only (recursively with Recursive).
	Recursive bool `json:"recursive,omitempty"`
	ReadOnly  bool `json:"readonly,omitempty"`
	// Optional skips a bind whose source does not exist (sandbox-paths'
	// trailing "?").
	Optional bool `json:"optional,omitempty"`
	// Shared makes the bind a shared mount (MS_SHARED); mounts made
	// below it later become shared too.
	Shared bool `json:"shared,omitempty"`
	// KeepSymlink re-creates a source that is a symlink as a symlink
	// instead of binding what it points to (Nix 2.22+ for store paths).
	KeepSymlink bool `json:"keepSymlink,omitempty"`
}

func (o Op) String() string {
	switch o.Kind {
	case OpMkdir, OpChmod:
		return fmt.Sprintf("%s %s %#o", o.Kind, o.Target, o.Mode)
	case OpFile:
		return fmt.Sprintf("file %s %#o (%d bytes)", o.Target, o.Mode, len(o.Data))
	case OpSymlink:
		return fmt.Sprintf("symlink %s -> %s", o.Target, o.Source)
	case OpRebind:
		return fmt.Sprintf("rebind %s on %s", o.Source, o.Target)
	case OpBind:
		var fl []string
		if o.Recursive {
			fl = append(fl, "rec")
		}
		if o.ReadOnly {
			fl = append(fl, "ro")
		}
		if o.Optional {
			fl = append(fl, "optional")
		}
		if o.Shared {
			fl = append(fl, "shared")
		}
		s := fmt.Sprintf("bind %s on %s", o.Source, o.Target)
		if len(fl) > 0 {
			s += " (" + strings.Join(fl, ",") + ")"
		}
		return s
	case OpMount:
		return fmt.Sprintf("mount %s on %s (%s)", o.FSType, o.Target, o.Data)
	}
	return string(o.Kind) + " " + o.Target
}

// PathMapping is one sandbox-paths entry: Target inside, Source on the
// host.
type PathMapping struct {
	Target   string
	Source   string
	Optional bool
}

// parsePathMapping parses Nix's sandbox-paths syntax: "PATH",
// "TARGET=SOURCE", either with a trailing "?" for optional.
func parsePathMapping(s string) (PathMapping, error) {
	var m PathMapping
	if strings.HasSuffix(s, "?") {
		m.Optional = true
		s = strings.TrimSuffix(s, "?")
	}
	m.Target, m.Source = s, s
	if i := strings.Index(s, "="); i >= 0 {
		m.Target, m.Source = s[:i], s[i+1:]
	}
	if !path.IsAbs(m.Target) || !path.IsAbs(m.Source) {
		return m, fmt.Errorf("parse sandbox path %q: paths must be absolute", s)
	}
	m.Target = path.Clean(m.Target)
	return m, nil
}

// PlanConfig is what the mount plan is made from.
type PlanConfig struct {
	// BuildDir is the host path of the private copy of the kept
	// directory; SandboxBuildDir where it appears (sandbox-build-dir,
	// default /build).
	BuildDir        string
	SandboxBuildDir string
	// TmpDir is the host directory that becomes /tmp.
	TmpDir string
	// Shell is bound on /bin/sh when set (the assignment asks for it;
	// real Nix has it only through sandbox-paths).
	Shell string
	// StorePaths, when non-nil, is the input closure: only these paths
	// appear under /nix/store, as in Nix. Nil binds the whole host store
	// read-only (storeView, when no closure can be computed).
	StorePaths []string
	// StoreDir is the store directory (/nix/store).
	StoreDir string
	// StoreDirSource is the host directory bound on StoreDir when
	// StorePaths is set: writable, so that the build can create $out as
	// in Nix, where the store dir is root:nixbld 01775.
	StoreDirSource string
	// KVM binds /dev/kvm.
	KVM bool
	// ShmSize is the size= option of /dev/shm (sandbox-dev-shm-size).
	ShmSize string
	// EtcMode is /etc's mode: 0755 up to Nix 2.13, 0555 from 2.14.
	EtcMode uint32
	// HostNetwork: a fixed-output derivation's view of /etc (host
	// resolv.conf, services, hosts and a written nsswitch.conf) instead
	// of the written /etc/hosts.
	HostNetwork bool
	// Extra are the sandbox-paths / extra-sandbox-paths entries.
	Extra []PathMapping
}

// reservedDirs are the sandbox's own top-level paths: the build
// directory may be none of them, nor lie above or below one (except
// below /tmp, where unsandboxed builds kept theirs). The mount plan runs
// before pivot_root, on host paths: a build directory on /dev or /nix
// would put the copy's own files, symlinks included, in the way of the
// steps that follow.
var reservedDirs = []string{"/bin", "/dev", "/etc", "/nix", "/proc", "/real-root", "/tmp"}

// checkBuildDir checks a sandbox build directory (NIX_BUILD_TOP from
// env-vars, which the build wrote).
func checkBuildDir(p string) error {
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("build directory %q is not a clean absolute path below /", p)
	}
	for _, r := range reservedDirs {
		inside := strings.HasPrefix(p, r+"/") && r != "/tmp"
		if p == r || strings.HasPrefix(r, p+"/") || inside {
			return fmt.Errorf("build directory %s collides with the sandbox's own %s", p, r)
		}
	}
	return nil
}

// Nix's /etc files, byte for byte (derivation-builder.cc). The home
// directory in passwd is sandbox-build-dir.
const (
	etcGroup    = "root:x:0:\nnixbld:!:100:\nnogroup:x:65534:\n"
	etcHosts    = "127.0.0.1 localhost\n::1 localhost\n"
	etcNsswitch = "hosts: files dns\nservices: files\n"
)

func etcPasswd(buildDir string) string {
	return "root:x:0:0:Nix build user:" + buildDir + ":/noshell\n" +
		"nixbld:x:1000:100:Nix build user:" + buildDir + ":/noshell\n" +
		"nobody:x:65534:65534:Nobody:/:/noshell\n"
}

// devNodes are the host devices Nix binds into /dev.
var devNodes = []string{"full", "null", "random", "tty", "urandom", "zero"}

// NewPlan returns the mount plan for c, in the order Nix's runChild
// applies it: skeleton and /dev, /etc, every bind sorted by target (Nix
// keeps pathsInChroot in a std::map), then /proc, /dev/shm and
// /dev/pts (with /dev/ptmx), then the final modes.
func NewPlan(c PlanConfig) []Op {
	buildDir := c.SandboxBuildDir
	if buildDir == "" {
		buildDir = "/build"
	}
	storeDir := c.StoreDir
	if storeDir == "" {
		storeDir = "/nix/store"
	}
	shm := c.ShmSize
	if shm == "" {
		shm = "50%"
	}
	etcMode := c.EtcMode
	if etcMode == 0 {
		etcMode = 0o555
	}

	ops := []Op{
		// Nix's chroot root is 0750 root:nixbld.
		{Kind: OpChmod, Target: "/", Mode: 0o750},
		{Kind: OpMkdir, Target: "/dev", Mode: 0o755},
		{Kind: OpMkdir, Target: "/etc", Mode: 0o755},
		{Kind: OpMkdir, Target: "/proc", Mode: 0o755},
		{Kind: OpMkdir, Target: "/tmp", Mode: 0o1777},
		{Kind: OpSymlink, Target: "/dev/fd", Source: "/proc/self/fd"},
		{Kind: OpSymlink, Target: "/dev/stdin", Source: "/proc/self/fd/0"},
		{Kind: OpSymlink, Target: "/dev/stdout", Source: "/proc/self/fd/1"},
		{Kind: OpSymlink, Target: "/dev/stderr", Source: "/proc/self/fd/2"},
		{Kind: OpMkdir, Target: "/dev/pts", Mode: 0o755},
		{Kind: OpMkdir, Target: "/dev/shm", Mode: 0o1777},
		{Kind: OpFile, Target: "/etc/passwd", Mode: 0o644, Data: etcPasswd(buildDir)},
		{Kind: OpFile, Target: "/etc/group", Mode: 0o644, Data: etcGroup},
	}
	if c.HostNetwork {
		// Fixed-output derivations see the host's name resolution.
		ops = append(ops, Op{Kind: OpFile, Target: "/etc/nsswitch.conf", Mode: 0o644, Data: etcNsswitch})
	} else {
		ops = append(ops, Op{Kind: OpFile, Target: "/etc/hosts", Mode: 0o644, Data: etcHosts})
	}

	binds := map[string]Op{}
	bind := func(o Op) { o.Kind = OpBind; binds[o.Target] = o }
	for _, n := range devNodes {
		bind(Op{Source: "/dev/" + n, Target: "/dev/" + n})
	}
	if c.KVM {
		bind(Op{Source: "/dev/kvm", Target: "/dev/kvm", Optional: true})
	}
	if c.HostNetwork {
		for _, f := range []string{"/etc/resolv.conf", "/etc/services", "/etc/hosts"} {
			bind(Op{Source: f, Target: f, Optional: true})
		}
	}
	bind(Op{Source: c.BuildDir, Target: buildDir})
	bind(Op{Source: c.TmpDir, Target: "/tmp"})
	if c.Shell != "" {
		bind(Op{Source: c.Shell, Target: "/bin/sh", ReadOnly: true})
	}
	if c.StorePaths == nil {
		// The whole store, read-only; not the rest of /nix, which holds
		// the daemon's socket and database.
		bind(Op{Source: storeDir, Target: storeDir, Recursive: true, ReadOnly: true})
	} else {
		// Nix's store dir is root:nixbld 01775 so that $out can be
		// created; inside our single-id map the nearest is a writable
		// directory of our own, which the input paths are bound into.
		// Nix (2.4+) makes the store a shared mount, for recursive Nix;
		// the inputs bound into it are shared with it.
		bind(Op{Source: c.StoreDirSource, Target: storeDir, Shared: true})
		for _, p := range c.StorePaths {
			bind(Op{Source: p, Target: p, Recursive: true, ReadOnly: true, KeepSymlink: true})
		}
	}
	// sandbox-paths are host files and directories. Nix binds them
	// read-write and relies on their owner (host root, unmapped inside);
	// nbs binds them read-only, so that not even a nested user namespace
	// inside could remount them writable.
	for _, m := range c.Extra {
		bind(Op{Source: m.Source, Target: m.Target, Optional: m.Optional, Recursive: true, ReadOnly: true})
	}
	targets := make([]string, 0, len(binds))
	for t := range binds {
		targets = append(targets, t)
	}
	sort.Strings(targets)
	for _, t := range targets {
		ops = append(ops, binds[t])
	}

	ops = append(ops,
		Op{Kind: OpMount, FSType: "proc", Target: "/proc"},
		Op{Kind: OpMount, FSType: "tmpfs", Target: "/dev/shm", Data: "size=" + shm + ",mode=1777"},
		// As Nix: a new devpts instance, then ptmx opened up by chmod
		// (its mount options keep ptmxmode=000).
		Op{Kind: OpMount, FSType: "devpts", Target: "/dev/pts", Data: "newinstance,mode=0620"},
		Op{Kind: OpChmod, Target: "/dev/pts/ptmx", Mode: 0o666},
		// Nix makes /dev/ptmx a symlink to /dev/pts/ptmx; the
		// assignment lists it among the character devices. A bind of
		// the new instance's ptmx is one, and still allocates in that
		// instance (the kernel takes the devpts of the mount it is
		// opened through), never in the host's.
		Op{Kind: OpRebind, Source: "/dev/pts/ptmx", Target: "/dev/ptmx"},
		Op{Kind: OpChmod, Target: buildDir, Mode: 0o700},
		Op{Kind: OpChmod, Target: "/tmp", Mode: 0o1777},
		Op{Kind: OpChmod, Target: "/etc", Mode: etcMode},
	)
	if c.StorePaths != nil {
		ops = append(ops, Op{Kind: OpChmod, Target: storeDir, Mode: 0o1775})
	}
	return ops
}
