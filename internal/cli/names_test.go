package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"github.com/cipack/cipack/internal/ci"
)

// Error subjects name cipack's inputs; CI reporters turn them into the
// names users typed. These tables are held to the packaging files both
// ways: every input an action or Task wires to a flag has its name, and
// every subject in the tables is one cipack produces (a flag, the IMAGE
// argument, or the credentials).
func TestErrorSubjectsMapToTheCIInputs(t *testing.T) {
	commands := map[string]*cobra.Command{"build": newBuildCmd(Env{}), "rebase": newRebaseCmd(Env{}), "manifest": newManifestCmd(Env{})}
	flags := map[string]bool{"IMAGE": true, "registry credentials": true}
	for _, c := range commands {
		c.Flags().VisitAll(func(f *pflag.Flag) { flags["--"+f.Name] = true })
	}
	for _, s := range ci.Subjects() {
		if !flags[s] {
			t.Errorf("subject %q is mapped to a CI name, but cipack never blames it", s)
		}
	}
	// Inputs whose name differs between actions: the table holds one name.
	sharedFlag := map[string]string{"--image": "action/rebase/action.yml"}
	wired := regexp.MustCompile(`^\$\{\{ inputs\.([a-z-]+) \}\}$`)
	checked := 0
	for file, cmd := range map[string]string{"action.yml": "build", "action/rebase/action.yml": "rebase", "action/manifest/action.yml": "manifest"} {
		var a struct {
			Runs struct {
				Steps []struct {
					Env map[string]string `yaml:"env"`
				} `yaml:"steps"`
			} `yaml:"runs"`
		}
		b, err := os.ReadFile(filepath.Join("..", "..", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &a); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, step := range a.Runs.Steps {
			for k, v := range step.Env {
				m := wired.FindStringSubmatch(v)
				flag := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(k, "CIPACK_")), "_", "-")
				if m == nil || !strings.HasPrefix(k, "CIPACK_") || commands[cmd].Flags().Lookup(flag[2:]) == nil || !isUserInput(flag) {
					continue
				}
				checked++
				switch got, ok := ci.ActionInputFor(flag); {
				case !ok:
					t.Errorf("%s wires input %s to %s, but an error about %s would not name the input", file, m[1], flag, flag)
				case got != m[1] && sharedFlag[flag] != file:
					t.Errorf("%s: %s is input %s, the table says %s", file, flag, m[1], got)
				}
			}
		}
	}
	var task struct {
		Spec struct {
			Steps []struct {
				Env []struct{ Name, Value string } `yaml:"env"`
			} `yaml:"steps"`
		} `yaml:"spec"`
	}
	param := regexp.MustCompile(`^\$\(params\.([A-Z_]+)\)$`)
	for _, file := range []string{"tekton/cipack-build.yaml", "tekton/cipack-manifest.yaml"} {
		b, err := os.ReadFile(filepath.Join("..", "..", file))
		if err != nil {
			t.Fatal(err)
		}
		if err := yaml.Unmarshal(b, &task); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		for _, step := range task.Spec.Steps {
			for _, e := range step.Env {
				m := param.FindStringSubmatch(e.Value)
				if m == nil || !strings.HasPrefix(e.Name, "CIPACK_") {
					continue
				}
				checked++
				flag := "--" + strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(e.Name, "CIPACK_")), "_", "-")
				if got, ok := ci.TaskParamFor(flag); !ok || got != m[1] {
					t.Errorf("%s wires param %s to %s; the table says %q", file, m[1], flag, got)
				}
			}
		}
	}
	if checked < 15 {
		t.Fatalf("only %d wired inputs found: the test read nothing useful", checked)
	}
}

// isUserInput leaves out credentials and plumbing, which cipack never
// blames by flag (their errors name the registry or the variable).
func isUserInput(flag string) bool {
	switch flag {
	case "--registry-username", "--registry-password", "--github-token", "--insecure-registry", "--version", "--output":
		return false
	}
	return true
}
