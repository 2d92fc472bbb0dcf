package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/registry"
)

// resolveOptions are the flags of `cipack resolve`: the registry options
// `build` has, so the action's cache-key step reads a private builder the
// way the build will.
type resolveOptions struct {
	Insecure        []string
	RegistryTimeout time.Duration
}

func (o *resolveOptions) Validate() error { return validateTimeout(o.RegistryTimeout) }

// newResolveCmd prints an image by digest, for this host's platform when
// it is an index: what pull mode would run. The action keys its cache on it.
func newResolveCmd(env Env) *cobra.Command {
	o := &resolveOptions{}
	cmd := &cobra.Command{
		Use:   "resolve IMAGE",
		Short: "Print IMAGE by digest (for this host's platform when IMAGE is an index)",
		Long: `Resolve prints IMAGE by digest. It takes the registry credentials build takes
(CIPACK_REGISTRY_USERNAME/PASSWORD, CNB_REGISTRY_AUTH, CIPACK_GITHUB_TOKEN for
ghcr.io, the docker config) and every flag can be set as CIPACK_<FLAG>.`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags(), env.Getenv); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			reg, err := newRegistry(env, o.Insecure, o.RegistryTimeout, args[0])
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
	cmd.Flags().StringSliceVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP; repeatable")
	addTimeoutFlag(cmd.Flags(), &o.RegistryTimeout)
	return cmd
}
