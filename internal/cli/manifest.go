package cli

import (
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/ci"
	"github.com/cipack/cipack/internal/merge"
)

// manifestOptions are the flags of `cipack manifest`.
type manifestOptions struct {
	merge.Options
	Output          string
	Insecure        []string
	RegistryTimeout time.Duration
}

func (o *manifestOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Image, "image", "i", "", "the index tag to write (required), e.g. registry.example/team/app:latest")
	f.StringSliceVarP(&o.Tags, "tag", "t", nil, "another full tag reference for the same index; repeatable")
	f.StringArrayVar(&o.Sources, "source", nil, "a per-platform image, like a SOURCE argument; repeatable (CIPACK_SOURCE: one per line)")
	f.BoolVar(&o.AnySource, "any-source", false, "merge images built from different sources (io.buildpacks.project.metadata differs)")
	f.StringVarP(&o.Output, "output", "o", "text", "result format on stdout: text (IMAGE@DIGEST) or json")
	f.StringSliceVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP; repeatable")
	addTimeoutFlag(f, &o.RegistryTimeout)
}

func (o *manifestOptions) Validate() error {
	if err := validateOutput(o.Output, o.RegistryTimeout); err != nil {
		return err
	}
	return o.Options.Validate()
}

func newManifestCmd(env Env) *cobra.Command {
	o := &manifestOptions{}
	cmd := &cobra.Command{
		Use:   "manifest [SOURCE...]",
		Short: "Combine per-platform images (one CI job per architecture) into one multi-arch index tag",
		Long: `Manifest checks that every SOURCE is a buildpacks image, that their platforms
are distinct and that they were built from the same source (the same
io.buildpacks.project.metadata; --any-source waives it), then writes an OCI
index of them and moves --image and --tag to it, all or none. It prints
IMAGE@DIGEST and writes the same CI outputs as a build.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withReporter(env, func(rep ci.Reporter) error { return runManifest(cmd, o, args, env, rep) })
		},
	}
	o.addFlags(cmd)
	return cmd
}

func runManifest(cmd *cobra.Command, o *manifestOptions, args []string, env Env, rep ci.Reporter) error {
	if err := bindEnv(cmd.Flags(), env.Getenv); err != nil {
		return err
	}
	o.Sources = append(o.Sources, args...)
	if err := o.Validate(); err != nil {
		return err
	}
	reg, err := newRegistry(env, o.Insecure, o.RegistryTimeout, append([]string{o.Image}, o.Tags...)...)
	if err != nil {
		return err
	}
	res, err := merge.Run(cmd.Context(), o.Options, reg, env.Stderr)
	if err != nil {
		return err
	}
	if err := rep.Outputs(map[string]string{
		"image":     res.Image,
		"digest":    res.Digest,
		"image-ref": res.ImageRef,
		"tags":      strings.Join(res.Tags, "\n"),
		"platforms": strings.Join(res.Platforms, ","),
	}); err != nil {
		return err
	}
	if err := rep.Summary(fmt.Sprintf("### cipack manifest\n\n| Index | `%s` |\n|---|---|\n| Platforms | %s |\n", res.ImageRef, strings.Join(res.Platforms, ", "))); err != nil {
		return err
	}
	return printResult(env, o.Output, res, res.ImageRef)
}
