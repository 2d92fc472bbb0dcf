package ci

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) Getenv { return func(k string) string { return m[k] } }

func TestDetect(t *testing.T) {
	var log strings.Builder
	for want, e := range map[string]map[string]string{
		"github": {"GITHUB_ACTIONS": "true"},
		"tekton": {"CIPACK_TEKTON_RESULTS_DIR": "/tekton/results/IMAGE_URL/.."},
		"plain":  {},
	} {
		if got := Detect(env(e), &log).Name(); got != want {
			t.Errorf("%v → %s, want %s", e, got, want)
		}
	}
}

func TestTektonWritesDeclaredResultsOnly(t *testing.T) {
	dir := t.TempDir()
	var log strings.Builder
	rep := Detect(env(map[string]string{"CIPACK_TEKTON_RESULTS_DIR": filepath.Join(dir, "IMAGE_URL") + "/.."}), &log)
	if err := rep.Outputs(map[string]string{"image": "r/app:latest", "digest": "sha256:abc", "image-ref": "r/app@sha256:abc", "rebase": "2"}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"IMAGE_URL": "r/app:latest", "IMAGE_DIGEST": "sha256:abc", "IMAGE_REF": "r/app@sha256:abc", "REBASED": "2"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q (%v), want %q", name, b, err, want)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 4 {
		t.Errorf("only declared results may be written, got %d files", len(entries))
	}
	rep.Error("--env", errors.New("bad"))
	if !strings.Contains(log.String(), "Task param ENV_VARS is at fault: bad") {
		t.Errorf("log %q", log.String())
	}
}

func TestGitHubOutputsSummaryGroupsAndAnnotations(t *testing.T) {
	dir := t.TempDir()
	out, summary := filepath.Join(dir, "out"), filepath.Join(dir, "summary")
	for _, f := range []string{out, summary} {
		if err := os.WriteFile(f, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var log strings.Builder
	rep := Detect(env(map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": out, "GITHUB_STEP_SUMMARY": summary}), &log)
	rep.Mask("hunter2")
	rep.PhaseStart("detecting")
	rep.PhaseEnd("detecting", time.Second)
	if err := rep.Outputs(map[string]string{"digest": "sha256:abc", "tags": "a:1\na:2"}); err != nil {
		t.Fatal(err)
	}
	if err := rep.Summary("### cipack build\n"); err != nil {
		t.Fatal(err)
	}
	rep.Error("--image", errors.New("no image given"))
	for _, want := range []string{"::add-mask::hunter2", "::group::detecting", "::endgroup::", "::error title=input image::no image given"} {
		if !strings.Contains(log.String(), want) {
			t.Errorf("log lacks %q:\n%s", want, log.String())
		}
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "digest<<") || !strings.Contains(string(b), "a:1\na:2") {
		t.Errorf("GITHUB_OUTPUT: %q", b)
	}
	if b, _ := os.ReadFile(summary); !strings.HasPrefix(string(b), "### cipack build\n") {
		t.Errorf("summary %q", b)
	}
}

// However many images a sweep moves, the Tekton results stay within the
// default 4096-byte budget, so the step never fails after pushing.
func TestTektonResultsStayWithinBudget(t *testing.T) {
	dir := t.TempDir()
	rep := Detect(env(map[string]string{"CIPACK_TEKTON_RESULTS_DIR": dir}), &strings.Builder{})
	var moved, images []string
	for i := 0; i < 75; i++ {
		moved = append(moved, fmt.Sprintf("registry.example/team/app-%03d:latest@sha256:%064d", i, i))
		images = append(images, fmt.Sprintf("registry.example/team/app-%03d@sha256:%064d", i, i))
	}
	if err := rep.Outputs(map[string]string{"moved": strings.Join(moved, "\n"), "images": strings.Join(images, "\n"), "rebase": "75", "up-to-date": "0", "error": "0"}); err != nil {
		t.Fatal(err)
	}
	// Chains parses IMAGES: whole NAME@DIGEST lines, nothing else.
	chains, _ := os.ReadFile(filepath.Join(dir, "IMAGES"))
	for _, l := range strings.Split(string(chains), "\n") {
		if !regexp.MustCompile(`^registry\.example/team/app-\d{3}@sha256:[0-9]{64}$`).MatchString(l) {
			t.Fatalf("IMAGES holds %q, not an image reference", l)
		}
	}
	// The budget holds for the message Tekton writes: the results as JSON
	// entries (tektontest checks this with Tekton's own entrypoint code).
	var msg []map[string]any
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		msg = append(msg, map[string]any{"key": e.Name(), "value": string(b), "type": 1})
	}
	msg = append(msg, map[string]any{"key": "StartedAt", "value": "2026-12-02T18:21:44.123Z", "type": 3})
	enc, _ := json.Marshal(msg)
	if len(enc) > ResultsBudget {
		t.Fatalf("the termination message takes %d bytes, over the %d budget", len(enc), ResultsBudget)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "MOVED_DIGESTS"))
	lines := strings.Split(string(b), "\n")
	if !strings.HasPrefix(lines[0], moved[0]) || !strings.Contains(lines[len(lines)-1], "more (IMAGES holds ") || !strings.Contains(lines[len(lines)-1], "report table in the step's log") {
		t.Fatalf("MOVED_DIGESTS should keep whole lines and say how many were cut:\n%s", b)
	}
	if r, _ := os.ReadFile(filepath.Join(dir, "REBASED")); string(r) != "75" {
		t.Fatalf("the counts are kept: REBASED=%q", r)
	}
}

// The budget counts the message as JSON: a value Tekton's entrypoint
// escapes ('<', '>', '&' take 6 bytes each, a newline 2) costs what it
// costs there, and the note names the report file.
func TestTektonBudgetCountsJSONEscaping(t *testing.T) {
	var moved, images []string
	for i := 0; i < 300; i++ {
		moved = append(moved, fmt.Sprintf("r.example/a-%03d:latest@sha256:%064d", i, i))
		images = append(images, fmt.Sprintf("r.example/a-%03d@sha256:%064d", i, i))
	}
	v := map[string]string{"moved": strings.Join(moved, "\n"), "images": strings.Join(images, "\n"), "rebase": "300",
		"report-file": "/reports/<sweep>&<night>.json"}
	out := withinBudget(v, ResultsBudget)
	if n := messageSize(out); n > ResultsBudget {
		t.Fatalf("message %d bytes", n)
	}
	var entries []map[string]any
	for k, name := range map[string]string{"moved": "MOVED_DIGESTS", "images": "IMAGES", "rebase": "REBASED"} {
		entries = append(entries, map[string]any{"key": name, "value": out[k], "type": 1})
	}
	enc, _ := json.Marshal(entries)
	if len(enc)+len(`,{"key":"StartedAt","value":"2026-12-02T18:21:44.123+05:30","type":3}`) > ResultsBudget {
		t.Fatalf("the message as Tekton writes it: %d bytes", len(enc))
	}
	if !strings.HasSuffix(out["moved"], "and in /reports/<sweep>&<night>.json") {
		t.Fatalf("the note should name the report file: %q", out["moved"][strings.LastIndex(out["moved"], "\n")+1:])
	}
	if ResultsBudget-messageSize(out) > 200 {
		t.Errorf("%d bytes left unused", ResultsBudget-messageSize(out))
	}
}
