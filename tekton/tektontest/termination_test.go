package tektontest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/tektoncd/pipeline/pkg/entrypoint"
	"github.com/tektoncd/pipeline/pkg/result"
	"github.com/tektoncd/pipeline/pkg/termination"
	"go.uber.org/zap"

	"github.com/cipack/cipack/internal/ci"
)

// The step's command, as Tekton's entrypoint runs it: here cipack's own
// result writer (internal/ci), given what `cipack rebase` hands it after a
// sweep that moved n images.
type runnerFunc func(ctx context.Context, args ...string) error

func (f runnerFunc) Run(ctx context.Context, args ...string) error { return f(ctx, args...) }

// waiter stands in for the cancellation file watch: never cancelled.
type waiter struct{}

func (waiter) Wait(ctx context.Context, _ string, _, _ bool) error {
	<-ctx.Done()
	return entrypoint.ErrContextCanceled
}

type postWriter struct{}

func (postWriter) Write(string, string) {}

// rebaseOutputs are the outputs `cipack rebase` (internal/cli
// finishRebase) hands the reporter after a sweep that moved n images.
func rebaseOutputs(n int) map[string]string {
	var moved, images []string
	for i := range n {
		digest := fmt.Sprintf("sha256:%064x", i*7919+1)
		moved = append(moved, fmt.Sprintf("registry.example.com/team-%02d/service-%04d:latest@%s", i%10, i, digest))
		images = append(images, fmt.Sprintf("registry.example.com/team-%02d/service-%04d@%s", i%10, i, digest))
	}
	return map[string]string{
		"moved": strings.Join(moved, "\n"), "images": strings.Join(images, "\n"), "report-file": "",
		"moved-json": "[]", "candidates": "[]",
		"up-to-date": "0", "rebase": strconv.Itoa(n), "rebuild": "0", "skipped": "0", "error": "0",
	}
}

// However many images a sweep moves, the termination message Tekton's own
// entrypoint writes for the rebase step (pkg/entrypoint reading the result
// files, pkg/termination writing and size-checking the JSON) fits its
// 4096-byte limit; the lists keep whole lines and say what was left out.
func TestRebaseResultsFitTektonsTerminationMessage(t *testing.T) {
	task := loadTask(t, "cipack-rebase.yaml")
	var declared []string
	for _, r := range task.Spec.Results {
		declared = append(declared, r.Name)
	}
	for _, n := range []int{60, 200, 1000} {
		t.Run(strconv.Itoa(n), func(t *testing.T) {
			dir := t.TempDir()
			results := filepath.Join(dir, "results")
			if err := os.Mkdir(results, 0o755); err != nil {
				t.Fatal(err)
			}
			outputs := rebaseOutputs(n)

			// The control: the results uncut are refused by Tekton's code.
			var uncut []result.RunResult
			for _, r := range declared {
				k := map[string]string{"UP_TO_DATE": "up-to-date", "REBASED": "rebase", "REBUILD": "rebuild", "SKIPPED": "skipped", "FAILED": "error", "MOVED_DIGESTS": "moved", "IMAGES": "images"}[r]
				uncut = append(uncut, result.RunResult{Key: r, Value: outputs[k], ResultType: result.TaskRunResultType})
			}
			if err := termination.WriteMessage(filepath.Join(dir, "uncut"), uncut); err == nil {
				t.Fatalf("%d images uncut fit the termination message: the test does not test the cut", n)
			} else {
				enc, _ := json.Marshal(uncut)
				t.Logf("%d moved images uncut: a %d-byte message, which Tekton refuses: %v", n, len(enc), err)
			}

			msgPath := filepath.Join(dir, "termination")
			e := entrypoint.Entrypointer{
				Command: []string{"cipack", "rebase"},
				Runner: runnerFunc(func(context.Context, ...string) error {
					getenv := func(k string) string {
						if k == "CIPACK_TEKTON_RESULTS_DIR" {
							return filepath.Join(results, "REBASED") + "/.." // as the Task passes it
						}
						return ""
					}
					return ci.Detect(getenv, os.Stderr).Outputs(outputs)
				}),
				Waiter:                 waiter{},
				PostWriter:             postWriter{},
				TerminationPath:        msgPath,
				Results:                declared,
				ResultsDirectory:       results,
				ResultExtractionMethod: entrypoint.ResultExtractionMethodTerminationMessage,
				StepMetadataDir:        filepath.Join(dir, "step"),
			}
			// Go log.Fatal()s when its message is over the limit.
			if err := e.Go(); err != nil {
				t.Fatalf("Tekton's entrypoint: %v", err)
			}
			msg, err := os.ReadFile(msgPath)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d moved images: termination message %d bytes (limit %d)", n, len(msg), termination.MaxContainerTerminationMessageLength)
			if len(msg) > termination.MaxContainerTerminationMessageLength {
				t.Fatalf("termination message %d bytes", len(msg))
			}
			parsed, err := termination.ParseMessage(zap.NewNop().Sugar(), string(msg))
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, r := range parsed {
				if r.ResultType == result.TaskRunResultType {
					got[r.Key] = r.Value
				}
			}
			if got["REBASED"] != strconv.Itoa(n) || got["FAILED"] != "0" {
				t.Fatalf("counts %v", got)
			}
			// IMAGES (Chains parses it): image references only.
			imgs := strings.Split(got["IMAGES"], "\n")
			for _, l := range imgs {
				if _, err := name.NewDigest(l); err != nil {
					t.Fatalf("IMAGES holds %q: %v", l, err)
				}
			}
			// MOVED_DIGESTS: whole lines, then what was left out and where.
			lines := strings.Split(got["MOVED_DIGESTS"], "\n")
			last := lines[len(lines)-1]
			want := fmt.Sprintf("... and %d more (IMAGES holds %d of %d): every image is in the report table in the step's log", n-(len(lines)-1), len(imgs), n)
			if last != want {
				t.Fatalf("MOVED_DIGESTS ends %q, want %q", last, want)
			}
			for i, l := range lines[:len(lines)-1] {
				ref, digest, _ := strings.Cut(l, "@")
				if l != strings.Split(outputs["moved"], "\n")[i] || !strings.HasPrefix(digest, "sha256:") || ref == "" {
					t.Fatalf("MOVED_DIGESTS line %d: %q", i, l)
				}
			}
			t.Logf("%d moved images: MOVED_DIGESTS keeps %d lines, IMAGES %d", n, len(lines)-1, len(imgs))
			if len(lines) < 10 || len(imgs) < 10 {
				t.Fatalf("the lists kept %d and %d lines: too few for the budget", len(lines)-1, len(imgs))
			}
		})
	}
}
