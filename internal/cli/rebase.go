package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/build"
	"github.com/cipack/cipack/internal/ci"
	"github.com/cipack/cipack/internal/config"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/rebase"
	"github.com/cipack/cipack/internal/redact"
	"github.com/cipack/cipack/internal/safefs"
)

// rebaseOptions are the flags of `cipack rebase`.
type rebaseOptions struct {
	Config     string
	Images     []string
	Builder    string
	DryRun     bool
	ExitCode   bool
	Jobs       int
	Output     string
	ReportFile string
	Insecure   []string
	Timeout    time.Duration
	Shard      string
	Merge      []string
	Changed    []string
	LastReport string
	Stage      bool
	Promote    string
	// PromoteDigest is the plan's sha256 as the stage step reported it
	// (output report-digest): a plan changed on its way is refused.
	PromoteDigest string
	// cwd is the working directory cipack started in (read at the edge):
	// Validate makes the path flags absolute against it.
	cwd string
}

func (o *rebaseOptions) addFlags(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.Config, "config", "c", "", "fleet file (YAML) listing the images to keep patched")
	f.StringArrayVar(&o.Images, "image", nil, "image to check, like an IMAGE argument; repeatable (CIPACK_IMAGE: one per line)")
	f.StringVar(&o.Builder, "builder", "", "builder to compare buildpacks with, for images given as arguments")
	f.BoolVar(&o.DryRun, "dry-run", false, "decide and print the plan; push nothing, trigger nothing")
	f.BoolVar(&o.ExitCode, "exit-code", false, "with --dry-run: exit 12 when some image needs a rebase or rebuild")
	f.IntVarP(&o.Jobs, "jobs", "j", 4, "images checked at once")
	f.StringVarP(&o.Output, "output", "o", "text", "result format on stdout: text (a table) or json")
	f.StringVar(&o.ReportFile, "report-file", "", "also write the JSON report to this file")
	f.StringSliceVar(&o.Insecure, "insecure-registry", nil, "registry host[:port] that may be reached over plain HTTP; repeatable")
	f.StringVar(&o.Shard, "shard", "", "sweep only part K of N of the images (K/N, from 1): a stable, disjoint part; the N parts cover the fleet")
	f.StringArrayVar(&o.Merge, "merge-reports", nil, "merge the JSON reports of a sharded sweep (--report-file of each shard) into one report; no sweep; repeatable")
	f.StringArrayVar(&o.Changed, "run-image-changed", nil, "a run image just pushed (e.g. from a registry's push event): check only the images on it, or on a mirror of it; repeatable")
	f.StringVar(&o.LastReport, "last-report", "", "with --run-image-changed: a previous sweep's JSON report, which tells each image's run image, so images on other run images are not read at all")
	f.BoolVar(&o.Stage, "stage", false, "push each rebased image by digest only: move no tag, call no trigger; the JSON report is the plan (candidates) for --promote")
	f.StringVar(&o.Promote, "promote", "", "move each image's tags to the candidate a --stage report (PLAN) names, only where every tag still holds the digest it had at staging (or already holds the candidate); no sweep; with --config, the fleet's runImage entries apply")
	f.StringVar(&o.PromoteDigest, "promote-digest", "", "required with --promote: the plan's digest (sha256:HEX) that the stage step output as report-digest; a plan that changed on its way between the jobs is refused")
	addTimeoutFlag(f, &o.Timeout)
}

func (o *rebaseOptions) Validate(args []string) error {
	o.absPaths()
	if o.Output != "text" && o.Output != "json" {
		return exit.Usagef("--output", "use text or json", "unknown output format %q", o.Output)
	}
	if o.Jobs < 1 || o.Jobs > 64 {
		return exit.Usagef("--jobs", "use a number from 1 to 64", "%d images at once is out of range", o.Jobs)
	}
	if o.ExitCode && !o.DryRun && len(o.Merge) == 0 {
		return exit.Usagef("--exit-code", "add --dry-run, or drop --exit-code", "--exit-code only applies to --dry-run")
	}
	if err := validateTimeout(o.Timeout); err != nil {
		return err
	}
	if o.Builder != "" {
		if _, err := name.ParseReference(o.Builder); err != nil {
			return exit.Usagef("--builder", "use a reference like registry.example/builders/base:latest", "%q is not an image reference: %v", o.Builder, err)
		}
	}
	if o.Shard != "" {
		if _, err := rebase.ParseShard(o.Shard); err != nil {
			return exit.Usagef("--shard", "give K/N with 1 <= K <= N, e.g. --shard 2/4", "%v", err)
		}
	}
	for _, c := range o.Changed {
		if _, err := name.ParseReference(c); err != nil {
			return exit.Usagef("--run-image-changed", "name the run image that was pushed, e.g. registry.example/base/run:jammy", "%q is not an image reference: %v", c, err)
		}
	}
	if o.LastReport != "" && len(o.Changed) == 0 {
		return exit.Usagef("--last-report", "add --run-image-changed, or drop --last-report", "--last-report only applies to --run-image-changed")
	}
	if o.Stage && o.DryRun {
		return exit.Usagef("--stage", "drop --dry-run: a staged sweep pushes candidates by digest and moves nothing", "--stage and --dry-run together")
	}
	if o.PromoteDigest != "" {
		if o.Promote == "" {
			return exit.Usagef("--promote-digest", "add --promote PLAN, or drop --promote-digest", "--promote-digest only applies to --promote")
		}
		if !isSHA256(o.PromoteDigest) {
			return exit.Usagef("--promote-digest", "pass the stage step's report-digest output as it is: sha256: and 64 hex digits", "%q is not a sha256 digest", o.PromoteDigest)
		}
	}
	if o.Promote != "" {
		return o.validatePromote(args)
	}
	if len(o.Merge) > 0 {
		if o.Config != "" || len(args)+len(o.Images) > 0 || o.Shard != "" || len(o.Changed) > 0 || o.Stage || o.DryRun || o.LastReport != "" {
			return exit.Usagef("--merge-reports", "merge in a job of its own: --merge-reports FILE... with no fleet, images, --shard, --run-image-changed, --stage or --dry-run (the reports say whether they were dry runs)", "--merge-reports sweeps nothing")
		}
		return nil
	}
	if o.Config == "" && len(args)+len(o.Images) == 0 {
		return exit.Usagef("--config", "pass --config FLEET.yaml or image references as arguments", "nothing to check")
	}
	return nil
}

// readCwd reads the working directory relative path flags mean.
func (o *rebaseOptions) readCwd() error {
	cwd, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("read the working directory: %w", err)
	}
	o.cwd = cwd
	return nil
}

// absPaths makes each path flag (fleet, reports, plan) absolute
// against the working directory cipack started in.
func (o *rebaseOptions) absPaths() {
	if o.cwd == "" {
		return
	}
	for _, p := range []*string{&o.Config, &o.ReportFile, &o.LastReport, &o.Promote} {
		*p = build.AbsPath(o.cwd, *p)
	}
	for i, m := range o.Merge {
		o.Merge[i] = build.AbsPath(o.cwd, m)
	}
}

// validatePromote: a promote runs in a step of its own, with the fleet
// it was staged with (optional: its runImage entries are the run images
// the candidates must sit on) and the plan's digest (required: a plan is
// a file anyone who can write the artifact or workspace can change).
func (o *rebaseOptions) validatePromote(args []string) error {
	if len(args)+len(o.Images) > 0 || o.Shard != "" || len(o.Changed) > 0 || o.Stage || o.DryRun || len(o.Merge) > 0 {
		return exit.Usagef("--promote", "promote in a step of its own: --promote PLAN --promote-digest DIGEST [--config FLEET], with no images or other mode", "--promote sweeps nothing")
	}
	if o.PromoteDigest == "" {
		return exit.Usagef("--promote-digest", "pass the stage step's report-digest output (Action: promote-digest; Tekton: PROMOTE_DIGEST from the stage run's REPORT_DIGEST)",
			"--promote %s without --promote-digest: the plan could have changed on its way between the jobs; nothing moved", o.Promote)
	}
	return nil
}

// targets merges the fleet file and the ad-hoc images.
func (o *rebaseOptions) targets(args []string) ([]rebase.Target, error) {
	var out []rebase.Target
	if o.Config != "" {
		f, err := config.Load(o.Config)
		if err != nil {
			return nil, err
		}
		out = f.Targets()
	}
	// Ad-hoc images are checked as the flags they are, each error naming
	// its own input.
	for _, a := range append(append([]string{}, o.Images...), args...) {
		r, err := name.ParseReference(a)
		if err != nil {
			return nil, exit.Usagef("IMAGE", "use registry.example/team/app:tag", "%q is not an image reference: %v", a, err)
		}
		if _, isTag := r.(name.Tag); !isTag {
			return nil, exit.Usagef("IMAGE", "name a tag: rebase moves tags to the new digest", "%q is a digest", a)
		}
		// img and img:latest, or an image also in the fleet: one image,
		// swept and reported once.
		if slices.ContainsFunc(out, func(t rebase.Target) bool { return sameTag(t.Image, r) }) {
			continue
		}
		out = append(out, rebase.Target{Image: a, Builder: o.Builder})
	}
	return out, nil
}

func sameTag(ref string, r name.Reference) bool {
	return rebase.CanonicalImage(ref) == rebase.CanonicalImage(r.String())
}

func newRebaseCmd(env Env) *cobra.Command {
	o := &rebaseOptions{}
	cmd := &cobra.Command{
		Use:   "rebase [IMAGE...]",
		Short: "Keep app images patched: rebase when only the run image moved, trigger a rebuild when buildpacks moved",
		Long: `Rebase checks each image against its current run image and builder:
  up-to-date  nothing moved: nothing is pushed
  rebase      only the run image moved: its layers are swapped in place, every tag moves or none
  rebuild     a buildpack moved (or the new run image is incompatible): the fleet's trigger is called
  skipped     not rebasable, or not a buildpacks image
Every flag can also be set as CIPACK_<FLAG> (e.g. CIPACK_CONFIG, CIPACK_DRY_RUN).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withReporter(env, func(rep ci.Reporter) error { return runRebase(cmd, o, args, env, rep) })
		},
	}
	o.addFlags(cmd)
	return cmd
}

func runRebase(cmd *cobra.Command, o *rebaseOptions, args []string, env Env, rep ci.Reporter) error {
	if err := bindEnv(cmd.Flags(), env.Getenv); err != nil {
		return err
	}
	if err := o.readCwd(); err != nil {
		return err
	}
	if err := o.Validate(args); err != nil {
		return err
	}
	if len(o.Merge) > 0 {
		report, err := mergeReports(o.Merge)
		if err != nil {
			return err
		}
		return finishRebase(cmd, o, env, rep, report)
	}
	if o.Promote != "" {
		return runPromote(cmd, o, env, rep)
	}
	targets, err := o.targets(args)
	if err != nil {
		return err
	}
	shard, _ := rebase.ParseShard(o.Shard)
	fleet := len(targets)
	targets = shard.Select(targets)
	if o.Shard != "" {
		fmt.Fprintf(env.Stderr, "cipack: shard %s: %d of the fleet's %d images\n", shard, len(targets), fleet)
	}
	if len(o.Changed) > 0 {
		if targets, err = o.affected(targets, env); err != nil {
			return err
		}
	}
	if err := o.checkReportFile(); err != nil {
		return err
	}
	var images []string
	for _, t := range targets {
		images = append(append(images, t.Image, t.Builder, t.RunImage), t.Tags...)
		// Webhook tokens are secrets too: hide them before anything runs.
		if t.Trigger != nil && t.Trigger.Webhook != nil {
			if t.Trigger.Webhook.TokenEnv != "" && !redact.IsCredentialVar(t.Trigger.Webhook.TokenEnv) {
				rep.Mask(env.Getenv(t.Trigger.Webhook.TokenEnv))
			}
			for _, s := range redact.SecretParts(t.Trigger.Webhook.URL) {
				rep.Mask(s)
			}
		}
	}
	reg, err := newRegistry(env, o.Insecure, o.Timeout, images...)
	if err != nil {
		return err
	}
	start := time.Now()
	outcomes := rebase.Sweep(cmd.Context(), targets, rebase.Options{DryRun: o.DryRun, Jobs: o.Jobs, Changed: o.Changed, Stage: o.Stage}, rebase.Deps{
		Registry: reg, Trigger: rebase.NewWebhook(env.Getenv), Log: env.Stderr,
	})
	report := rebase.NewReport(outcomes, o.DryRun, time.Since(start))
	report.Shard = shard.String()
	return finishRebase(cmd, o, env, rep, report)
}

// affected keeps the targets the pushed run images may affect, reading
// no image: by their fleet entries, and by the last report when given.
func (o *rebaseOptions) affected(targets []rebase.Target, env Env) ([]rebase.Target, error) {
	last := rebase.RunImages{}
	if o.LastReport != "" {
		r, err := readReport("--last-report", o.LastReport, "name a previous sweep's --report-file")
		if err != nil {
			return nil, err
		}
		last = rebase.RunImagesOf(r)
	}
	kept, unknown := rebase.Affected(targets, o.Changed, last)
	fmt.Fprintf(env.Stderr, "cipack: run image changed: %d of %d images may be on it", len(kept), len(targets))
	if unknown > 0 {
		fmt.Fprintf(env.Stderr, " (%d of them read to find out: pass --last-report, or set runImage in the fleet, to skip that)", unknown)
	}
	fmt.Fprintln(env.Stderr)
	return kept, nil
}

// checkReportFile finds out now, not after the sweep has pushed, that
// the report can be written. A link there is refused: the report is
// written fresh, never through one.
func (o *rebaseOptions) checkReportFile() error {
	if o.ReportFile == "" {
		return nil
	}
	f, err := os.OpenFile(o.ReportFile, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return exit.Usagef("--report-file", "point it at a writable path that is not a symbolic link", "%v", err)
	}
	return f.Close()
}

// runPromote moves the tags of a staged sweep's plan to its candidates.
func runPromote(cmd *cobra.Command, o *rebaseOptions, env Env, rep ci.Reporter) error {
	plan, raw, err := readReportBytes("--promote", o.Promote, "name the --report-file of a --stage sweep")
	if err != nil {
		return err
	}
	// The bytes read are the bytes checked and the bytes parsed.
	if got := digestOf(raw); got != o.PromoteDigest {
		return exit.Usagef("--promote", "promote the plan file the stage step wrote, with its report-digest output",
			"%s is %s, not the staged plan %s: it changed on its way between the jobs; nothing moved", o.Promote, got, o.PromoteDigest)
	}
	var fleet []rebase.Target
	if o.Config != "" {
		f, err := config.Load(o.Config)
		if err != nil {
			return err
		}
		fleet = f.Targets()
	}
	reg, err := newRegistry(env, o.Insecure, o.Timeout, promoteScope(plan, fleet)...)
	if err != nil {
		return err
	}
	start := time.Now()
	outcomes, err := rebase.Promote(cmd.Context(), reg, plan, fleet)
	if err != nil {
		return exit.Usagef("--promote", "name the --report-file of a --stage sweep", "%v", err)
	}
	return finishRebase(cmd, o, env, rep, rebase.NewReport(outcomes, false, time.Since(start)))
}

// promoteScope names the images a promote's credentials are for: with a
// fleet, the fleet's images, tags and run images, never the plan's (a
// file that travelled between jobs; Promote refuses a plan image or tag
// the fleet does not list); without one, the plan's images and tags.
func promoteScope(plan rebase.Report, fleet []rebase.Target) []string {
	var images []string
	if fleet != nil {
		for _, t := range fleet {
			images = append(append(images, t.Image, t.RunImage), t.Tags...)
		}
		return images
	}
	for _, im := range plan.Images {
		images = append(append(images, im.Image), im.Tags...)
	}
	return images
}

// readReport reads a rebase JSON report (bounded, a regular file).
func readReport(flag, file, hint string) (rebase.Report, error) {
	r, _, err := readReportBytes(flag, file, hint)
	return r, err
}

// readReportBytes is readReport that also returns the bytes it parsed.
func readReportBytes(flag, file, hint string) (rebase.Report, []byte, error) {
	b, err := safefs.ReadUserFile(file, 256<<20)
	var r rebase.Report
	if err == nil {
		err = json.Unmarshal(b, &r)
	}
	if err != nil || r.Counts == nil {
		return r, nil, exit.Usagef(flag, hint, "%s is not a cipack rebase report (%v)", file, err)
	}
	return r, b, nil
}

// isSHA256 accepts sha256: and 64 lowercase hex digits, as digestOf gives.
func isSHA256(d string) bool {
	h, ok := strings.CutPrefix(d, "sha256:")
	if !ok || len(h) != 64 {
		return false
	}
	_, err := hex.DecodeString(h)
	return err == nil && strings.ToLower(h) == h
}

// digestOf is a report file's digest, as the report-digest output gives it.
func digestOf(b []byte) string {
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// mergeReports reads the shards' JSON reports (bounded, as regular
// files) and merges them.
func mergeReports(files []string) (rebase.Report, error) {
	var reports []rebase.Report
	for _, f := range files {
		r, err := readReport("--merge-reports", f, "name the --report-file each shard wrote")
		if err != nil {
			return r, err
		}
		reports = append(reports, r)
	}
	report, err := rebase.Merge(reports)
	if err != nil {
		return report, exit.Usagef("--merge-reports", "pass the report of every shard once", "%v", err)
	}
	return report, nil
}

// finishRebase prints a sweep's (or merged) report, writes the report
// file and CI outputs, and turns it into the exit code.
func finishRebase(cmd *cobra.Command, o *rebaseOptions, env Env, rep ci.Reporter, report rebase.Report) error {
	doc, err := json.MarshalIndent(report, "", "  ")
	if err != nil {
		return err
	}
	// stdout first: whatever fails after, the record of what moved is out.
	if o.Output == "json" {
		fmt.Fprintln(env.Stdout, string(doc))
	} else if err := report.WriteTable(env.Stdout); err != nil {
		return err
	}
	file := append(doc, '\n')
	if o.ReportFile != "" {
		if err := safefs.WriteFileAtomic(o.ReportFile, file, 0o644); err != nil {
			return exit.Usagef("--report-file", "point it at a writable path; the report is on stdout above", "%v", err)
		}
	}
	subjects, chainsImages := attestationSubjects(report)
	outputs := map[string]string{"report-file": o.ReportFile, "moved": movedLines(report.Moved()), "moved-json": subjects, "images": chainsImages,
		"candidates": candidates(report), "report-digest": digestOf(file)}
	for k, v := range report.Counts {
		outputs[k] = strconv.Itoa(v)
	}
	if err := rep.Outputs(outputs); err != nil {
		return err
	}
	if err := rep.Summary(report.Markdown()); err != nil {
		return err
	}
	if err := cmd.Context().Err(); err != nil {
		// Interrupted: the report above says what was done; a rerun
		// finishes the rest (and converges any tags left apart).
		return exit.New(exit.Canceled, "rebase", fmt.Errorf("%w: %d of %d images were handled before the signal", err, report.Handled(), len(report.Images)), "rerun the sweep to finish")
	}
	if n := report.Failed(); n > 0 {
		what := "rebase"
		if o.Promote != "" {
			what = "--promote " + o.Promote
		}
		return exit.New(exit.SomeFailed, what, fmt.Errorf("%d of %d images failed", n, len(report.Images)), "see the table above; the other images were handled")
	}
	if report.DryRun && o.ExitCode && report.Pending() > 0 {
		return exit.New(exit.ChangesPending, "rebase", fmt.Errorf("%d images need a rebase or rebuild", report.Pending()), "run without --dry-run to apply")
	}
	return nil
}

// candidates lists a staged sweep's candidates as JSON
// [{"image","candidate"}] (candidate: NAME@DIGEST), ready for a
// strategy.matrix of verify jobs.
func candidates(r rebase.Report) string {
	type candidate struct {
		Image     string `json:"image"`
		Candidate string `json:"candidate"`
	}
	out := []candidate{}
	for _, o := range r.Images {
		if !o.Staged {
			continue
		}
		if ref, err := name.ParseReference(o.Image); err == nil {
			out = append(out, candidate{Image: o.Image, Candidate: ref.Context().Name() + "@" + o.NewDigest})
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

func movedLines(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s@%s\n", k, m[k])
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// attestationSubjects lists the images a sweep pushed as the subjects an
// attest or sign job follows: JSON [{"name","digest","tags"}] (ready for a
// strategy.matrix), and name@digest lines (Tekton Chains' IMAGES).
func attestationSubjects(r rebase.Report) (string, string) {
	type subject struct {
		Name   string   `json:"name"`
		Digest string   `json:"digest"`
		Tags   []string `json:"tags"`
	}
	subjects := []subject{}
	var lines []string
	for _, o := range r.Images {
		if o.NewDigest == "" || o.NewDigest == o.OldDigest || o.Staged {
			continue // nothing new was pushed (a converge moves tags only), or nothing moved yet
		}
		ref, err := name.ParseReference(o.Image)
		if err != nil {
			continue
		}
		n := ref.Context().Name()
		subjects = append(subjects, subject{Name: n, Digest: o.NewDigest, Tags: o.Tags})
		lines = append(lines, n+"@"+o.NewDigest)
	}
	b, _ := json.Marshal(subjects)
	return string(b), strings.Join(lines, "\n")
}
