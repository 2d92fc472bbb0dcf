package ci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Text from registries, webhooks and images cannot become a workflow
// command in a GitHub log.
func TestSafeLogDefusesWorkflowCommands(t *testing.T) {
	var out strings.Builder
	w := SafeLog(env(map[string]string{"GITHUB_ACTIONS": "true"}), &out)
	w.Write([]byte("cipack: error: registry said: denied\n::set-output name=digest::sha256:evil\n  ::add-mask::x\n"))
	w.Write([]byte("partial ::error::not at line start\r::warning::after CR\n##[set-output name=a;]b\n"))
	w.Write([]byte("::notice::no newline yet"))
	w.Flush()
	for _, line := range strings.FieldsFunc(out.String(), func(r rune) bool { return r == '\n' || r == '\r' }) {
		trimmed := strings.TrimLeft(line, " \t")
		if strings.HasPrefix(trimmed, "::") || strings.HasPrefix(trimmed, "##[") {
			t.Errorf("a line the runner would execute got through: %q", line)
		}
	}
	if !strings.Contains(out.String(), "partial ::error::not at line start") || !strings.Contains(out.String(), "set-output name=digest::sha256:evil") {
		t.Errorf("the text itself should stay readable:\n%s", out.String())
	}
	var plain strings.Builder
	SafeLog(env(map[string]string{}), &plain).Write([]byte("::x::y\n"))
	if plain.String() != "::x::y\n" {
		t.Errorf("outside GitHub the text passes unchanged: %q", plain.String())
	}
}

func TestGitHubOutputsRefuseForgedValuesAndCheckFiles(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	rep := Detect(env(map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": out}), &strings.Builder{})
	if err := rep.Check(); err != nil {
		t.Fatal(err)
	}
	err := rep.Outputs(map[string]string{"digest": "sha256:x\n" + heredocDelimiter + "\nimage-ref<<EOF\nevil\nEOF"})
	if err == nil {
		t.Fatal("a value carrying the heredoc delimiter must be refused")
	}
	if b, _ := os.ReadFile(out); len(b) != 0 {
		t.Errorf("nothing may be written when a value is refused: %q", b)
	}
	bad := Detect(env(map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": filepath.Join(dir, "no", "such", "dir")}), &strings.Builder{})
	if bad.Check() == nil {
		t.Error("an unwritable GITHUB_OUTPUT must fail the check, before any push")
	}
	if Detect(env(map[string]string{"CIPACK_TEKTON_RESULTS_DIR": filepath.Join(dir, "missing")}), &strings.Builder{}).Check() == nil {
		t.Error("a missing Tekton results dir must fail the check")
	}
}
