// Package ci is the only code that knows a CI vendor. It detects where
// cipack runs (GitHub Actions, Tekton, or a plain shell) and turns cipack's
// results into that vendor's outputs, summaries, log groups, annotations
// and masks, and its error messages into the names the user typed (an
// action input, a Task param). Domain packages see only the Reporter.
package ci

import (
	"encoding/json"
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

// ResultsBudget is the size Tekton allows a step's termination message,
// the JSON its entrypoint writes the results in (pipeline's
// termination.MaxContainerTerminationMessageLength, 4096 bytes): a step
// whose message is larger fails ("Termination message is above max allowed
// size 4096"), after cipack has pushed. The budget is measured on that
// message, not on the result files: see messageSize.
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
// only, and MOVED_DIGESTS ends with a line that says how many were left
// out and where the full list is (the report table in the step's log, and
// --report-file when set).
var listOutputs = []string{"moved", "images"}

// strictLists are list outputs a machine parses (Chains reads IMAGES as
// image references): they are cut on whole lines with no note appended.
var strictLists = map[string]bool{"images": true}

// runResult is the shape of one entry of the termination message that
// Tekton's entrypoint writes (pipeline v1.15.0: pkg/entrypoint's
// Entrypointer.readResultsFromDisk reads each declared result file into a
// result.RunResult {"key","value","type"}, and pkg/termination's
// WriteMessage json.Marshal()s the list and refuses it above
// MaxContainerTerminationMessageLength). encoding/json escapes the value as
// Tekton's does: a newline takes 2 bytes, '<' '>' '&' take 6.
type runResult struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	Type  int    `json:"type,omitempty"`
}

// The entries Tekton adds to a step's message besides its results: when
// the step started (always; Entrypointer.Go, time format
// "2006-01-02T15:04:05.000Z07:00", at its longest with an offset) and the
// exit code (with onError: continue). Both are internal results (type 3).
var reserved = []runResult{
	{Key: "StartedAt", Value: "2006-01-02T15:04:05.000+07:00", Type: 3},
	{Key: "ExitCode", Value: "255", Type: 3},
}

// messageSize is the size of the termination message Tekton writes for
// the results v (cipack's output names; only declared results are files),
// with the entries it adds itself.
func messageSize(v map[string]string) int {
	entries := append([]runResult{}, reserved...)
	for _, k := range sortedKeys(v) {
		if name, ok := taskResults[k]; ok {
			entries = append(entries, runResult{Key: name, Value: v[k], Type: 1}) // result.TaskRunResultType
		}
	}
	b, err := json.Marshal(entries)
	if err != nil {
		return 1 << 30 // strings always marshal; never claim it fits
	}
	return len(b)
}

// jsonLen is how many bytes s takes inside a JSON string.
func jsonLen(s string) int {
	b, _ := json.Marshal(s)
	return len(b) - 2
}

func withinBudget(v map[string]string, budget int) map[string]string {
	if messageSize(v) <= budget {
		return v
	}
	var lists []string
	for _, k := range listOutputs {
		if _, declared := taskResults[k]; declared && v[k] != "" {
			lists = append(lists, k)
		}
	}
	if len(lists) == 0 {
		return v
	}
	out := make(map[string]string, len(v))
	for k, val := range v {
		out[k] = val
	}
	all := map[string][]string{}
	for _, k := range lists {
		all[k] = strings.Split(v[k], "\n")
		out[k] = ""
	}
	// What the counts and Tekton's own entries leave, the lists share:
	// the shortest first, so what one does not use goes to the next.
	room := budget - messageSize(out)
	slices.SortFunc(lists, func(a, b string) int { return jsonLen(v[a]) - jsonLen(v[b]) })
	kept := map[string]int{}
	for i, k := range lists {
		share := room / (len(lists) - i)
		if !strictLists[k] {
			share -= 2 + jsonLen(note(k, 1<<20, 0, 1<<20, out["report-file"]))
		}
		used := 0
		for _, l := range all[k] {
			n := jsonLen(l)
			if kept[k] > 0 {
				n += 2 // the "\n" before it
			}
			if used+n > share {
				break
			}
			used += n
			kept[k]++
		}
		room -= used
	}
	// The cut lists, each note naming what the strict list kept; then,
	// should the estimate be off, lines go until the message fits.
	for {
		for _, k := range lists {
			cut := strings.Join(all[k][:kept[k]], "\n")
			if !strictLists[k] && kept[k] < len(all[k]) {
				if cut != "" {
					cut += "\n"
				}
				cut += note(k, len(all[k])-kept[k], kept["images"], len(all["images"]), out["report-file"])
			}
			out[k] = cut
		}
		if messageSize(out) <= budget {
			return out
		}
		k := lists[0]
		for _, l := range lists {
			if kept[l] > kept[k] {
				k = l
			}
		}
		if kept[k] == 0 {
			return out // nothing left to cut: the counts alone are over
		}
		kept[k]--
	}
}

// note is the last line of a cut list: how many lines were left out, how
// many of its images IMAGES (which holds no note) kept, and where every
// image is listed.
func note(k string, more, imagesKept, imagesAll int, reportFile string) string {
	s := fmt.Sprintf("... and %d more", more)
	if k != "images" && imagesKept < imagesAll {
		s += fmt.Sprintf(" (IMAGES holds %d of %d)", imagesKept, imagesAll)
	}
	s += ": every image is in the report table in the step's log"
	if reportFile != "" {
		s += " and in " + reportFile
	}
	return s
}
