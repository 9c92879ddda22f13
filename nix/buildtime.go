package nix

import "time"

// KeptBuildTime is how long the build that left the kept directory dir
// ran, when its file times tell; ok is false when they do not.
//
// Nix creates the build directory just before it starts the builder
// (createTempDir in LocalDerivationGoal::startBuilder, 2.8;
// DerivationBuilderImpl::startBuild from 2.29) and, keeping it after the
// failure, chmods it 0755 once the builder has exited (deleteTmpDir in
// both): its birth time is the start, its change time the end. The
// directory is new for each build (its name has a counter, or the
// builder's PID), so both belong to this build. The stored log
// (LogDir/drvs) is no such witness: Nix opens it with O_TRUNC, so a
// derivation built before keeps the birth time of its first log; and
// nix-build prints no times. A directory still 0700 is of a build that
// has not ended (or was changed since); a file system without birth
// times gives no figure.
func KeptBuildTime(dir string) (d time.Duration, ok bool) {
	birth, change, mode, ok := birthAndChange(dir)
	if !ok || mode&0o777 != 0o755 || change.Before(birth) {
		return 0, false
	}
	d = change.Sub(birth)
	// More than a year is a clock that jumped, not a build.
	if d > 366*24*time.Hour {
		return 0, false
	}
	return d, true
}
