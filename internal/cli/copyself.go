package cli

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/exit"
)

// newCopySelfCmd copies the running binary to a path. The cipack image has
// no shell or cp, and the Tekton build step runs in the builder image:
// a first step runs `cipack copy-self /cipack/bin/cipack` in the cipack
// image to hand the binary over through a shared volume.
func newCopySelfCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "copy-self DEST",
		Short: "Copy this cipack binary to DEST (for CI steps that run in another image)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("find own binary: %w", err)
			}
			if err := copyFile(self, args[0]); err != nil {
				return exit.Usagef("DEST", "give a writable path, e.g. a shared volume", "%v", err)
			}
			fmt.Fprintln(env.Stdout, args[0])
			return nil
		},
	}
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	out, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, dst)
}
