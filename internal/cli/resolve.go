package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// newResolveCmd prints an image by digest, for this host's platform when
// it is an index: what pull mode would run. The action keys its cache on it.
func newResolveCmd(env Env) *cobra.Command {
	var insecure []string
	cmd := &cobra.Command{
		Use:   "resolve IMAGE",
		Short: "Print IMAGE by digest (for this host's platform when IMAGE is an index)",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			reg, err := newRegistry(env, insecure, registry.DefaultTimeout, args[0])
			if err != nil {
				return err
			}
			r, err := reg.Parse(args[0])
			if err != nil {
				return exit.Usagef("IMAGE", "use a reference like registry.example/team/app:tag", "invalid image reference %q: %v", args[0], err)
			}
			img, err := reg.ImageFor(cmd.Context(), r, registry.HostPlatform())
			if err != nil {
				return err
			}
			d, err := img.Digest()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(env.Stdout, r.Context().Digest(d.String()).String())
			return err
		},
	}
	cmd.Flags().StringSliceVar(&insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP; repeatable")
	return cmd
}
