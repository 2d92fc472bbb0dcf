package cli

import (
	"time"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/ci"
	"github.com/cipack/cipack/internal/rebase"
)

// newRollbackCmd is `cipack rollback`: the undo of a rebase (or a
// promote), from the record cipack leaves next to every digest it moves
// tags to. It is reported like a sweep.
func newRollbackCmd(env Env) *cobra.Command {
	o := &rebaseOptions{}
	cmd := &cobra.Command{
		Use:   "rollback [IMAGE...]",
		Short: "Move tags back to the digest they held before cipack last moved them",
		Long: `Rollback reads, for each image tag, the record cipack left when it last
moved the tag (an OCI artifact referring to the tag's current digest, in the
same repository), and moves the tag and the tags that moved with it back to the
previous digest — only where every one still points at the digest cipack moved
it to. Images come from arguments, --image, or a fleet file (--config).
Every flag can also be set as CIPACK_<FLAG>.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withReporter(env, func(rep ci.Reporter) error { return runRollback(cmd, o, args, env, rep) })
		},
	}
	f := cmd.Flags()
	f.StringVarP(&o.Config, "config", "c", "", "fleet file: roll back every image in it")
	f.StringArrayVar(&o.Images, "image", nil, "image tag to roll back, like an IMAGE argument; repeatable")
	f.StringVarP(&o.Output, "output", "o", "text", "result format on stdout: text (a table) or json")
	f.StringVar(&o.ReportFile, "report-file", "", "also write the JSON report to this file")
	f.StringSliceVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP; repeatable")
	addTimeoutFlag(f, &o.Timeout)
	return cmd
}

func runRollback(cmd *cobra.Command, o *rebaseOptions, args []string, env Env, rep ci.Reporter) error {
	if err := bindEnv(cmd.Flags(), env.Getenv); err != nil {
		return err
	}
	o.Jobs = 1
	if err := o.readCwd(); err != nil {
		return err
	}
	if err := o.Validate(args); err != nil {
		return err
	}
	targets, err := o.targets(args)
	if err != nil {
		return err
	}
	if err := o.checkReportFile(); err != nil {
		return err
	}
	var images []string
	for _, t := range targets {
		images = append(append(images, t.Image), t.Tags...)
	}
	reg, err := newRegistry(env, o.Insecure, o.Timeout, images...)
	if err != nil {
		return err
	}
	start := time.Now()
	outcomes := rebase.Rollback(cmd.Context(), reg, targets)
	return finishRebase(cmd, o, env, rep, rebase.NewReport(outcomes, false, time.Since(start)))
}
