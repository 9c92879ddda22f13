//go:build linux

package sandbox

import "testing"

// TestRanUnsandboxed: a NIX_BUILD_TOP that is a host build directory of
// any layout means the build ran without Nix's sandbox.
func TestRanUnsandboxed(t *testing.T) {
	tests := []struct {
		top, kept string
		want      bool
	}{
		{"/build", "/tmp/nix-build-a.drv-0/build", false},
		{"/tmp/nix-build-a.drv-0", "/tmp/nix-build-a.drv-0", true},
		{"/tmp/nix-build-a.drv-0", "/elsewhere/copy", true},                   // Nix ≤ 2.29
		{"/nix/var/nix/builds/nix-build-a.drv-12-3", "/elsewhere/copy", true}, // 2.30.0–2.31.1
		{"/nix/var/nix/builds/nix-12-3", "/elsewhere/copy", true},             // 2.30.4+
		{"/nix/var/nix/b/0f3k/b", "/elsewhere/copy", true},                    // Lix 2.94+
		{"/home/u/src", "/elsewhere/copy", false},
		{"/tmp/nix-build-a", "/elsewhere/copy", false},
	}
	for _, tt := range tests {
		if got := ranUnsandboxed(tt.top, tt.kept); got != tt.want {
			t.Errorf("ranUnsandboxed(%q, %q) = %v, want %v", tt.top, tt.kept, got, tt.want)
		}
	}
}

// TestSandboxOff: the user's word (the command line) comes before Nix's
// setting, and relaxed means the sandbox unless the derivation asks for
// none.
func TestSandboxOff(t *testing.T) {
	for _, tt := range []struct {
		cmdline, setting string
		noChroot, want   bool
	}{
		{"", "true", false, false},
		{"", "", false, false},
		{"", "false", false, true},
		{"false", "true", false, true},
		{"true", "false", false, false},
		{"", "relaxed", false, false},
		{"", "relaxed", true, true},
		{"relaxed", "false", true, true},
		{"relaxed", "false", false, false},
		{"", "true", true, false},
	} {
		off, why := sandboxOff(tt.cmdline, tt.setting, func() bool { return tt.noChroot })
		if off != tt.want || off != (why != "") {
			t.Errorf("sandboxOff(%q, %q, noChroot %v) = %v, %q; want %v", tt.cmdline, tt.setting, tt.noChroot, off, why, tt.want)
		}
	}
}
