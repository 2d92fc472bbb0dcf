package acttest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/cipack/cipack/internal/testenv"
)

var root = filepath.Join("..", "..")

type actionFile struct {
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Author      string `yaml:"author"`
	Branding    map[string]string
	Inputs      map[string]struct {
		Description string `yaml:"description"`
		Required    bool   `yaml:"required"`
		Default     string `yaml:"default"`
	} `yaml:"inputs"`
	Outputs map[string]struct {
		Description string `yaml:"description"`
		Value       string `yaml:"value"`
	} `yaml:"outputs"`
	Runs struct {
		Using string `yaml:"using"`
		Steps []struct {
			ID    string            `yaml:"id"`
			Name  string            `yaml:"name"`
			Shell string            `yaml:"shell"`
			Run   string            `yaml:"run"`
			Uses  string            `yaml:"uses"`
			With  map[string]string `yaml:"with"`
			Env   map[string]string `yaml:"env"`
			If    string            `yaml:"if"`
		} `yaml:"steps"`
	} `yaml:"runs"`
}

var actionFiles = []string{"action.yml", filepath.Join("action", "rebase", "action.yml"), filepath.Join("action", "manifest", "action.yml")}

func loadAction(t *testing.T, rel string) *actionFile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	var a actionFile
	if err := dec.Decode(&a); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return &a
}

// GitHub is stricter than act: composite run steps must declare shell:,
// inputs reach run steps only through expressions (no INPUT_* variables),
// and every input should be used and documented.
func TestActionFilesFollowGitHubRules(t *testing.T) {
	inputRef := regexp.MustCompile(`inputs\.([A-Za-z0-9_-]+)`)
	for _, rel := range actionFiles {
		a := loadAction(t, rel)
		if a.Runs.Using != "composite" {
			t.Errorf("%s: runs.using is %q, want composite", rel, a.Runs.Using)
		}
		if a.Name == "" || a.Description == "" || a.Branding["icon"] == "" {
			t.Errorf("%s: name, description and branding are needed for the Marketplace", rel)
		}
		used := map[string]bool{}
		stepIDs := map[string]bool{}
		for i, s := range a.Runs.Steps {
			where := rel + " step " + s.Name
			if s.Run != "" && s.Shell == "" {
				t.Errorf("%s: a composite run step must declare shell:", where)
			}
			if s.Run != "" && s.Uses != "" {
				t.Errorf("%s: run and uses together", where)
			}
			all := s.Run + s.If
			for _, v := range s.With {
				all += v
			}
			for k, v := range s.Env {
				all += v
				if strings.HasPrefix(k, "INPUT_") {
					t.Errorf("%s: sets %s; GitHub does not pass INPUT_* to composite steps, act does", where, k)
				}
			}
			if strings.Contains(s.Run, "INPUT_") {
				t.Errorf("%s: reads INPUT_*: GitHub passes composite inputs only through ${{ inputs.* }}", where)
			}
			if strings.Contains(s.Run, "${{") {
				t.Errorf("%s: expressions in run: scripts are an injection risk; map them to env: instead", where)
			}
			for _, m := range inputRef.FindAllStringSubmatch(all, -1) {
				used[m[1]] = true
			}
			if s.ID != "" {
				stepIDs[s.ID] = true
			}
			_ = i
		}
		for name, in := range a.Inputs {
			if in.Description == "" {
				t.Errorf("%s: input %s has no description", rel, name)
			}
			if !used[name] {
				t.Errorf("%s: input %s is never used by a step", rel, name)
			}
		}
		for name := range used {
			if _, ok := a.Inputs[name]; !ok {
				t.Errorf("%s: steps use inputs.%s, which is not declared", rel, name)
			}
		}
		for name, out := range a.Outputs {
			m := regexp.MustCompile(`steps\.([a-z0-9_-]+)\.outputs\.`).FindStringSubmatch(out.Value)
			if out.Description == "" || m == nil || !stepIDs[m[1]] {
				t.Errorf("%s: output %s must be documented and come from a step of this action (%q)", rel, name, out.Value)
			}
		}
	}
}

// The README's tables list exactly the actions' inputs and outputs.
func TestREADMETablesMatchActions(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ file, heading string }{
		{"action.yml", "### Action `cipack/cipack`"},
		{filepath.Join("action", "rebase", "action.yml"), "### Action `cipack/cipack/action/rebase`"},
		{filepath.Join("action", "manifest", "action.yml"), "### Action `cipack/cipack/action/manifest`"},
	} {
		a := loadAction(t, c.file)
		section, ok := testenv.MarkdownSection(string(readme), c.heading)
		if !ok {
			t.Fatalf("README has no %q", c.heading)
		}
		var ins, outs []string
		for k := range a.Inputs {
			ins = append(ins, k)
		}
		for k := range a.Outputs {
			outs = append(outs, k)
		}
		for _, tc := range []struct {
			header string
			want   []string
		}{{"| Input |", ins}, {"| Output |", outs}} {
			got := testenv.TableNames(section, tc.header)
			sort.Strings(got)
			sort.Strings(tc.want)
			if !slices.Equal(got, tc.want) {
				t.Errorf("README %s for %s lists %v; the action has %v", tc.header, c.file, got, tc.want)
			}
		}
	}
}

// No script interpolates an expression: ${{ }} inside run: is pasted into
// the script before the shell sees it, so an output or event field that
// holds shell syntax would run as a command. Values go in through env:.
func TestNoExpressionInsideScripts(t *testing.T) {
	files := append([]string{}, actionFiles...)
	examples, _ := filepath.Glob(filepath.Join(root, "examples", "github", "*.yml"))
	for _, e := range examples {
		rel, _ := filepath.Rel(root, e)
		files = append(files, rel)
	}
	if len(files) < 4 {
		t.Fatalf("found only %v", files)
	}
	for _, rel := range files {
		b, err := os.ReadFile(filepath.Join(root, rel))
		if err != nil {
			t.Fatal(err)
		}
		var doc yaml.Node
		if err := yaml.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", rel, err)
		}
		var walk func(n *yaml.Node)
		walk = func(n *yaml.Node) {
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == "run" && strings.Contains(n.Content[i+1].Value, "${{") {
						t.Errorf("%s:%d: run: interpolates an expression; pass it through env:", rel, n.Content[i+1].Line)
					}
				}
			}
			for _, c := range n.Content {
				walk(c)
			}
		}
		walk(&doc)
	}
}

// Every workflow — the project's own and the examples — passes actionlint
// (built from the version linttool/go.mod pins; shellcheck and pyflakes
// are not installed here, so those checks are off).
func TestWorkflowsPassActionlint(t *testing.T) {
	ctx := context.Background()
	tool, err := filepath.Abs("linttool")
	if err != nil {
		t.Fatal(err)
	}
	dir, err := testenv.ToolDir(ctx, tool, "github.com/rhysd/actionlint")
	if err != nil {
		t.Fatal(err)
	}
	if err := testenv.BuildTool(ctx, tool, dir, "actionlint", "github.com/rhysd/actionlint/cmd/actionlint"); err != nil {
		t.Fatal(err)
	}
	rootDir, _ := filepath.Abs(root)
	files, _ := filepath.Glob(filepath.Join(rootDir, ".github", "workflows", "*.yml"))
	examples, _ := filepath.Glob(filepath.Join(rootDir, "examples", "github", "*.yml"))
	files = append(files, examples...)
	if len(files) < 6 {
		t.Fatalf("found only %v", files)
	}
	cmd := exec.Command(filepath.Join(dir, "actionlint"), append([]string{"-shellcheck=", "-pyflakes="}, files...)...)
	cmd.Dir = rootDir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("actionlint: %v\n%s", err, out)
	}
}
