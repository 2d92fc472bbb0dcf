package ci

import (
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
	total := 0
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		total += len(b)
	}
	if total > ResultsBudget {
		t.Fatalf("results take %d bytes, over the %d budget", total, ResultsBudget)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "MOVED_DIGESTS"))
	lines := strings.Split(string(b), "\n")
	if !strings.HasPrefix(lines[0], moved[0]) || !strings.Contains(lines[len(lines)-1], "more: see the JSON report") {
		t.Fatalf("MOVED_DIGESTS should keep whole lines and say how many were cut:\n%s", b)
	}
	if r, _ := os.ReadFile(filepath.Join(dir, "REBASED")); string(r) != "75" {
		t.Fatalf("the counts are kept: REBASED=%q", r)
	}
}
