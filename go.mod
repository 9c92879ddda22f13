module github.com/nix-build-shell/nbs

go 1.22

require (
	github.com/fsnotify/fsnotify v1.8.0
	github.com/spf13/cobra v1.8.1
	github.com/spf13/pflag v1.0.9
	golang.org/x/sys v0.28.0
	golang.org/x/term v0.27.0
)

require github.com/inconshreveable/mousetrap v1.1.0 // indirect
