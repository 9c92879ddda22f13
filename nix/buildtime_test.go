package nix

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestKeptBuildTime(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nix-build-x.drv-0")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	// A build still running: its directory is 0700.
	if d, ok := KeptBuildTime(dir); ok {
		t.Errorf("a 0700 directory: %v, want no figure", d)
	}
	if _, _, _, ok := birthAndChange(dir); !ok {
		t.Skip("this file system records no birth times")
	}
	time.Sleep(60 * time.Millisecond)
	// What Nix does when it keeps the directory after the build.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d, ok := KeptBuildTime(dir)
	// File times come from the kernel's coarse clock (a tick or two
	// behind).
	if !ok || d < 30*time.Millisecond || d > time.Hour {
		t.Errorf("KeptBuildTime = %v, %v; want the 60 ms or so between mkdir and chmod", d, ok)
	}
	if _, ok := KeptBuildTime(filepath.Join(dir, "missing")); ok {
		t.Error("a missing directory has a figure")
	}
}
