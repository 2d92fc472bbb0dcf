// Package ci is the only code that knows a CI vendor. It detects where
// cipack runs (GitHub Actions, Tekton, or a plain shell) and turns cipack's
// results into that vendor's outputs, summaries, log groups, annotations
// and masks. Domain packages see only the Reporter interface.
package ci

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sethvargo/go-githubactions"
)

// Reporter is what a command tells its CI about. Every method must be
// safe to call with the plain reporter, where most do nothing.
type Reporter interface {
	Name() string
	// Mask hides a secret in all later log lines. Call it before the
	// secret could be printed.
	Mask(secret string)
	PhaseStart(phase string)
	PhaseEnd(phase string, d time.Duration)
	// Outputs publishes step outputs (GitHub) or results (Tekton).
	Outputs(values map[string]string) error
	// Summary appends markdown to the job summary, where there is one.
	Summary(markdown string) error
	// Error annotates a failure; subject names the input at fault.
	Error(subject string, err error)
}

// Getenv is how the edge hands the environment in.
type Getenv func(string) string

// Detect picks the reporter for the environment. log receives workflow
// commands (GitHub) and group markers.
func Detect(getenv Getenv, log io.Writer) Reporter {
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		return newGitHub(getenv, log)
	case getenv("CIPACK_TEKTON_RESULTS_DIR") != "":
		return &tekton{dir: getenv("CIPACK_TEKTON_RESULTS_DIR"), log: log}
	}
	return &plain{log: log}
}

type plain struct{ log io.Writer }

func (p *plain) Name() string                           { return "plain" }
func (p *plain) Mask(string)                            {}
func (p *plain) PhaseStart(string)                      {}
func (p *plain) PhaseEnd(phase string, d time.Duration) {}
func (p *plain) Outputs(map[string]string) error        { return nil }
func (p *plain) Summary(string) error                   { return nil }
func (p *plain) Error(string, error)                    {}

type github struct {
	a *githubactions.Action
}

func newGitHub(getenv Getenv, log io.Writer) *github {
	return &github{a: githubactions.New(githubactions.WithGetenv(githubactions.GetenvFunc(getenv)), githubactions.WithWriter(log))}
}

func (g *github) Name() string { return "github" }
func (g *github) Mask(s string) {
	if s != "" {
		g.a.AddMask(s)
	}
}
func (g *github) PhaseStart(phase string)        { g.a.Group(phase) }
func (g *github) PhaseEnd(string, time.Duration) { g.a.EndGroup() }
func (g *github) Summary(md string) error        { g.a.AddStepSummary(md); return nil }
func (g *github) Error(subject string, err error) {
	g.a.WithFieldsMap(map[string]string{"title": subject}).Errorf("%s", err)
}
func (g *github) Outputs(v map[string]string) error {
	for _, k := range sortedKeys(v) {
		g.a.SetOutput(k, v[k])
	}
	return nil
}

// tekton writes results as files in the Task's results directory, the
// contract Tekton (and Chains, for IMAGE_URL/IMAGE_DIGEST) reads.
type tekton struct {
	dir string
	log io.Writer
}

func (t *tekton) Name() string                   { return "tekton" }
func (t *tekton) Mask(string)                    {}
func (t *tekton) PhaseStart(string)              {}
func (t *tekton) PhaseEnd(string, time.Duration) {}
func (t *tekton) Summary(string) error           { return nil }
func (t *tekton) Error(string, error)            {}
func (t *tekton) Outputs(v map[string]string) error {
	for _, k := range sortedKeys(v) {
		if err := os.WriteFile(filepath.Join(t.dir, k), []byte(v[k]), 0o644); err != nil {
			return fmt.Errorf("write Tekton result %s: %w", k, err)
		}
	}
	return nil
}
