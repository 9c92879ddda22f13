// Package shquote is nbs's one rule for quoting words for a POSIX shell:
// Quote for the shell code nbs writes (the sandbox shell's start-up
// file, the scripts a remote builder runs), Paste for the commands nbs
// prints for a user to copy (nbs shell DIR), which stay readable.
//
// It sits under sandbox, whose shell start-up file is its first user,
// and imports nothing of nbs.
package shquote

import "strings"

// Quote makes s one word for sh, bash or zsh, whatever it holds: s in
// single quotes, where each ' of s ends the quoting, is written as \'
// and starts it again. The word means s in any place a word can stand,
// also as a command's name or an assignment's value.
// (A NUL byte cannot be in a shell word at all.)
func Quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Paste is Quote for a command a user reads and pastes as an argument:
// s stays bare when every byte is one no shell treats specially in an
// argument (letters, digits, / . _ - + = : @ % ,), and when it does not
// start with '=', which zsh expands to a command's path.
func Paste(s string) string {
	if s != "" && s[0] != '=' && strings.Trim(s, safe) == "" {
		return s
	}
	return Quote(s)
}

const safe = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:@%,"
