// Package ci is the only code that knows a CI vendor. It detects where
// cipack runs (GitHub Actions, Tekton, or a plain shell) and turns cipack's
// results into that vendor's outputs, summaries, log groups, annotations
// and masks, and its error messages into the names the user typed (an
// action input, a Task param). Domain packages see only the Reporter.
package ci

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"
)

// Reporter is what a command tells its CI about.
type Reporter interface {
	Name() string
	// Mask hides a secret in all later log lines. Call it before the
	// secret could be printed.
	Mask(secret string)
	PhaseStart(phase string)
	PhaseEnd(phase string, d time.Duration)
	// Outputs publishes step outputs (GitHub) or results (Tekton). Keys
	// are cipack's generic names (image, digest, rebase, …).
	Outputs(values map[string]string) error
	// Summary appends markdown to the job summary, where there is one.
	Summary(markdown string) error
	// Error reports a failure; subject is the cipack input at fault
	// ("--image"), which the reporter names as the user knows it.
	Error(subject string, err error)
	// Check verifies, before any push, that outputs can be written, so a
	// command never fails to report what it already moved.
	Check() error
}

// Getenv is how the edge hands the environment in.
type Getenv func(string) string

// Detect picks the reporter for the environment. log receives workflow
// commands (GitHub) and messages.
func Detect(getenv Getenv, log io.Writer) Reporter {
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		return newGitHub(getenv, log)
	case getenv("CIPACK_TEKTON_RESULTS_DIR") != "":
		// The Task passes "$(results.X.path)/..": clean it to the directory.
		return &tekton{dir: filepath.Clean(getenv("CIPACK_TEKTON_RESULTS_DIR")), log: log}
	}
	return &plain{log: log}
}

// Workspace is the directory the CI checked the source out in, the root an
// app path must stay inside: GITHUB_WORKSPACE on GitHub Actions. Tekton's
// Task passes its source workspace as --source-root itself. Empty means
// the working directory.
func Workspace(getenv Getenv) string {
	if getenv("GITHUB_ACTIONS") == "true" {
		return getenv("GITHUB_WORKSPACE")
	}
	return ""
}

// Source is where the CI checked the code out from, for the image's
// project metadata: GitHub's server/repository and commit. Tekton's Task
// passes its params as flags itself.
func Source(getenv Getenv) (repository, commit string) {
	if getenv("GITHUB_ACTIONS") != "true" {
		return "", ""
	}
	if repo := getenv("GITHUB_REPOSITORY"); repo != "" {
		server := getenv("GITHUB_SERVER_URL")
		if server == "" {
			server = "https://github.com"
		}
		repository = server + "/" + repo
	}
	return repository, getenv("GITHUB_SHA")
}

type plain struct{ log io.Writer }

func (p *plain) Name() string                    { return "plain" }
func (p *plain) Mask(string)                     {}
func (p *plain) PhaseStart(string)               {}
func (p *plain) PhaseEnd(string, time.Duration)  {}
func (p *plain) Outputs(map[string]string) error { return nil }
func (p *plain) Summary(string) error            { return nil }
func (p *plain) Error(string, error)             {}
func (p *plain) Check() error                    { return nil }

type github struct {
	a      *githubactions.Action
	getenv Getenv
}

func newGitHub(getenv Getenv, log io.Writer) *github {
	return &github{a: githubactions.New(githubactions.WithGetenv(githubactions.GetenvFunc(getenv)), githubactions.WithWriter(log)), getenv: getenv}
}

func (g *github) Name() string { return "github" }
func (g *github) Mask(s string) {
	if s != "" {
		g.a.AddMask(s)
	}
}
func (g *github) PhaseStart(phase string)        { g.a.Group(phase) }
func (g *github) PhaseEnd(string, time.Duration) { g.a.EndGroup() }
func (g *github) Summary(md string) (err error) {
	if g.getenv("GITHUB_STEP_SUMMARY") == "" {
		return nil // a runner (or act) without a summary file
	}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write the GitHub job summary: %v", r)
		}
	}()
	g.a.AddStepSummary(md)
	return nil
}
func (g *github) Error(subject string, err error) {
	title := subject
	if in, ok := actionInputs[subject]; ok {
		title = "input " + in
	}
	g.a.WithFieldsMap(map[string]string{"title": title}).Errorf("%s", err)
}

// Check opens the output and summary files the runner gave, for append,
// without writing.
func (g *github) Check() error {
	for _, k := range []string{"GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"} {
		if p := g.getenv(k); p != "" {
			f, err := os.OpenFile(p, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("%s cannot be written: %w", k, err)
			}
			f.Close()
		}
	}
	return nil
}

// heredocDelimiter is the fixed delimiter go-githubactions writes
// multi-line outputs with: a value holding it would end the value early
// and smuggle in more outputs.
const heredocDelimiter = "_GitHubActionsFileCommandDelimeter_"

func (g *github) Outputs(v map[string]string) (err error) {
	for _, k := range sortedKeys(v) {
		if strings.Contains(v[k], heredocDelimiter) || strings.ContainsAny(k, "\r\n<=") {
			return fmt.Errorf("output %s: refusing a value that could forge other outputs", k)
		}
	}
	if g.getenv("GITHUB_OUTPUT") == "" {
		return nil // no output file: nothing reads outputs
	}
	// go-githubactions panics when the file cannot be written.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("write GitHub outputs: %v", r)
		}
	}()
	for _, k := range sortedKeys(v) {
		g.a.SetOutput(k, v[k])
	}
	return nil
}

// tekton writes results as files in the Task's results directory, the
// contract Tekton (and Chains, for IMAGE_URL/IMAGE_DIGEST) reads. Only
// results the Tasks declare are written.
type tekton struct {
	dir string
	log io.Writer
}

func (t *tekton) Name() string                   { return "tekton" }
func (t *tekton) Mask(string)                    {}
func (t *tekton) PhaseStart(string)              {}
func (t *tekton) PhaseEnd(string, time.Duration) {}
func (t *tekton) Summary(string) error           { return nil }
func (t *tekton) Error(subject string, err error) {
	if p, ok := taskParams[subject]; ok {
		fmt.Fprintf(t.log, "cipack: Task param %s is at fault: %v\n", p, err)
	}
}

// Check makes sure the results directory takes files.
func (t *tekton) Check() error {
	f, err := os.CreateTemp(t.dir, ".cipack-check-")
	if err != nil {
		return fmt.Errorf("the Tekton results directory %s cannot be written: %w", t.dir, err)
	}
	f.Close()
	return os.Remove(f.Name())
}

// ResultsBudget is Tekton's default budget for all results of a step
// (4096 bytes): a step that writes more fails, after cipack has pushed.
const ResultsBudget = 4096

func (t *tekton) Outputs(v map[string]string) error {
	v = withinBudget(v, ResultsBudget)
	for _, k := range sortedKeys(v) {
		name, ok := taskResults[k]
		if !ok {
			continue
		}
		if err := os.WriteFile(filepath.Join(t.dir, name), []byte(v[k]), 0o644); err != nil {
			return fmt.Errorf("write Tekton result %s: %w", name, err)
		}
	}
	return nil
}

// listOutputs are the outputs that grow with a fleet, one line per image:
// when the results would overflow the budget they are cut, whole lines
// only, and end with a line that says how many were left out (the full
// list is in the JSON report on stdout, and in --report-file).
var listOutputs = []string{"moved", "images"}

// strictLists are list outputs a machine parses (Chains reads IMAGES as
// image references): they are cut on whole lines with no note appended.
var strictLists = map[string]bool{"images": true}

func withinBudget(v map[string]string, budget int) map[string]string {
	size, fixed := 0, 0
	var lists []string
	for k, val := range v {
		if _, declared := taskResults[k]; !declared {
			continue
		}
		size += len(val)
		if slices.Contains(listOutputs, k) && val != "" {
			lists = append(lists, k)
		} else {
			fixed += len(val)
		}
	}
	if size <= budget || len(lists) == 0 {
		return v
	}
	out := make(map[string]string, len(v))
	for k, val := range v {
		out[k] = val
	}
	// The lists share what the counts leave, equally.
	room := (budget - fixed) / len(lists)
	for _, k := range lists {
		lines := strings.Split(out[k], "\n")
		note := !strictLists[k]
		avail := room
		if note {
			avail -= 64 // the "... and N more" line
		}
		kept, used := 0, 0
		for _, l := range lines {
			if used+len(l)+1 > avail {
				break
			}
			used += len(l) + 1
			kept++
		}
		cut := strings.Join(lines[:kept], "\n")
		if kept < len(lines) && note {
			if cut != "" {
				cut += "\n"
			}
			cut += fmt.Sprintf("... and %d more: see the JSON report in the step's log", len(lines)-kept)
		}
		out[k] = cut
	}
	return out
}
