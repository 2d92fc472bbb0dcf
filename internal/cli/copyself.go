package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/safefs"
)

// newCopySelfCmd copies the running binary to a path. The cipack image has
// no shell or cp, and the Tekton build step runs in the builder image:
// a first step runs `cipack copy-self /cipack/bin/cipack` in the cipack
// image to hand the binary over through a shared volume.
func newCopySelfCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "copy-self DEST",
		Short: "Copy this cipack binary to DEST (for CI steps that run in another image)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			// Refused before 30 MB are copied next to it.
			if fi, err := os.Lstat(args[0]); err == nil && fi.IsDir() {
				return exit.Usagef("DEST", "name the file to write, e.g. "+filepath.Join(args[0], "cipack"), "%s is a directory", args[0])
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own binary: %w", err)
			}
			// DEST is on a volume other steps share: a link left there
			// is replaced, never written through.
			if err := safefs.CopyFileAtomic(self, args[0], 0o755); err != nil {
				if ns := exit.NoSpace(args[0], err); ns != nil { // DEST is fine, its disk is full
					return ns
				}
				return exit.Usagef("DEST", "give a writable path, e.g. a shared volume", "%v", err)
			}
			fmt.Fprintln(env.Stdout, args[0])
			return nil
		},
	}
}
