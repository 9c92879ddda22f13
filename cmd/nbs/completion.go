package main

import (
	"fmt"

	"github.com/spf13/cobra"
)

func newCmdCompletion(f *Factory) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print the shell completion script for bash, zsh or fish",
		Long: `Print a script that makes the shell complete nbs's commands, flags and,
for 'nbs shell' and 'nbs diff', the kept build directories on this machine
(see 'nbs list'). Load it in the current shell, or install it where the
shell finds completions.`,
		Example: `  # bash: now, or for every shell (needs bash-completion)
  source <(nbs completion bash)
  nbs completion bash > ~/.local/share/bash-completion/completions/nbs

  # zsh: a directory in $fpath, then restart zsh
  nbs completion zsh > "${fpath[1]}/_nbs"

  # fish
  nbs completion fish > ~/.config/fish/completions/nbs.fish`,
		ValidArgs:             []string{"bash", "zsh", "fish"},
		Args:                  cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		DisableFlagsInUseLine: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			root, out := cmd.Root(), f.Stdout
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(out, true)
			case "zsh":
				return root.GenZshCompletion(out)
			case "fish":
				return root.GenFishCompletion(out, true)
			}
			return fmt.Errorf("completion: no script for %s", args[0])
		},
	}
	return cmd
}
