// Package diff compares a kept build directory with the sandbox's copy of
// it: which entries changed, were added or were removed (Trees), and, for
// text files, what changed line by line as a unified diff that patch(1)
// applies (Unified, Write).
//
// The line diff is Myers' O(ND) algorithm in its linear-space form
// ("An O(ND) Difference Algorithm and Its Variations", 1986, section 4b):
// it finds the middle snake of a shortest edit script and recurses on
// both halves, so memory stays proportional to the files' lengths however
// different they are. No dependency: the same few hundred lines every
// diff tool carries.
package diff
