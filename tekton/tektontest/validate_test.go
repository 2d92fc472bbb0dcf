package tektontest

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"knative.dev/pkg/apis"
	"sigs.k8s.io/yaml"

	"github.com/cipack/cipack/internal/testenv"
)

// root is cipack's repository root.
var root = filepath.Join("..", "..")

type validatable interface {
	SetDefaults(context.Context)
	Validate(context.Context) *apis.FieldError
}

// docs splits a multi-document YAML file.
func docs(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, d := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
		if strings.TrimSpace(stripComments(d)) != "" {
			out = append(out, []byte(d))
		}
	}
	return out
}

func stripComments(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// strict decodes YAML into v, refusing unknown fields.
func strict(t *testing.T, where string, doc []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		t.Fatalf("%s: %v", where, err)
	}
}

func validateTekton(t *testing.T, where string, v validatable) {
	t.Helper()
	ctx := context.Background()
	v.SetDefaults(ctx)
	if fe := v.Validate(ctx); fe != nil && fe.Error() != "" {
		t.Fatalf("%s: Tekton validation: %v", where, fe)
	}
}

// Every YAML under tekton/ and examples/tekton/ decodes strictly into
// Tekton v1 (or Kubernetes) types and passes Tekton's own validation.
func TestEveryYAMLDecodesStrictlyAndValidates(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(root, "tekton", "*.yaml"))
	ex, _ := filepath.Glob(filepath.Join(root, "examples", "tekton", "*.yaml"))
	files = append(files, ex...)
	if len(files) < 6 {
		t.Fatalf("expected the Tasks and the examples, found %v", files)
	}
	seenKinds = map[string]int{}
	kinds := seenKinds
	for _, f := range files {
		for i, d := range docs(t, f) {
			where := filepath.Base(f) + "#" + string(rune('0'+i))
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal(d, &meta); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			validateDoc(t, where, meta.APIVersion, meta.Kind, d)
		}
	}
	for _, want := range []string{"tekton.dev/v1/Task", "tekton.dev/v1/Pipeline", "tekton.dev/v1/PipelineRun", "tekton.dev/v1/TaskRun",
		"batch/v1/CronJob", "v1/ServiceAccount", "rbac.authorization.k8s.io/v1/Role", "rbac.authorization.k8s.io/v1/RoleBinding",
		"triggers.tekton.dev/v1beta1/TriggerTemplate", "triggers.tekton.dev/v1beta1/TriggerBinding", "triggers.tekton.dev/v1beta1/EventListener"} {
		if kinds[want] == 0 {
			t.Errorf("no %s among the YAML files (saw %v)", want, kinds)
		}
	}
}

// seenKinds counts the kinds validated, embedded ones included.
var seenKinds = map[string]int{}

func validateDoc(t *testing.T, where, apiVersion, kind string, d []byte) {
	t.Helper()
	seenKinds[apiVersion+"/"+kind]++
	switch apiVersion + "/" + kind {
	case "tekton.dev/v1/Task":
		var o v1.Task
		strict(t, where, d, &o)
		validateTekton(t, where, &o)
		checkCatalogConventions(t, where, &o)
	case "tekton.dev/v1/Pipeline":
		var o v1.Pipeline
		strict(t, where, d, &o)
		validateTekton(t, where, &o)
	case "tekton.dev/v1/PipelineRun":
		var o v1.PipelineRun
		strict(t, where, d, &o)
		o.Name = generatedName(o.Name, o.GenerateName)
		validateTekton(t, where, &o)
	case "tekton.dev/v1/TaskRun":
		var o v1.TaskRun
		strict(t, where, d, &o)
		o.Name = generatedName(o.Name, o.GenerateName)
		validateTekton(t, where, &o)
	case "batch/v1/CronJob":
		var o batchv1.CronJob
		strict(t, where, d, &o)
		if o.Spec.Schedule == "" || len(o.Spec.JobTemplate.Spec.Template.Spec.Containers) == 0 {
			t.Fatalf("%s: a CronJob needs a schedule and a container", where)
		}
		// Bitnami stopped publishing its kubectl tags: the examples use
		// the Kubernetes project's own image, pinned to a release that has it.
		for _, c := range o.Spec.JobTemplate.Spec.Template.Spec.Containers {
			if m := regexp.MustCompile(`^registry\.k8s\.io/kubectl:v1\.(\d+)\.\d+$`).FindStringSubmatch(c.Image); m == nil || len(m[1]) < 2 || m[1] < "28" {
				t.Errorf("%s: container %s runs %s; use registry.k8s.io/kubectl:v1.28.0 or newer, pinned", where, c.Name, c.Image)
			}
		}
	case "v1/ServiceAccount":
		strict(t, where, d, &corev1.ServiceAccount{})
	case "v1/ConfigMap":
		var o corev1.ConfigMap
		strict(t, where, d, &o)
		for k, v := range o.Data {
			if strings.HasSuffix(k, ".yaml") {
				var meta struct{ APIVersion, Kind string }
				if err := yaml.Unmarshal([]byte(v), &meta); err != nil {
					t.Fatalf("%s data %s: %v", where, k, err)
				}
				validateDoc(t, where+" data "+k, meta.APIVersion, meta.Kind, []byte(v))
			}
		}
	case "rbac.authorization.k8s.io/v1/Role":
		var o rbacv1.Role
		strict(t, where, d, &o)
		if !slices.ContainsFunc(o.Rules, func(r rbacv1.PolicyRule) bool {
			return slices.Contains(r.Resources, "taskruns") && slices.Contains(r.Verbs, "create")
		}) {
			t.Fatalf("%s: the scheduler must be allowed to create taskruns", where)
		}
	case "rbac.authorization.k8s.io/v1/RoleBinding":
		strict(t, where, d, &rbacv1.RoleBinding{})
	case "triggers.tekton.dev/v1beta1/TriggerTemplate":
		var o triggerTemplate
		strict(t, where, d, &o)
		for i, rt := range o.Spec.ResourceTemplates {
			var meta struct{ APIVersion, Kind string }
			_ = yaml.Unmarshal(rt, &meta)
			validateDoc(t, where+" resourcetemplate "+string(rune('0'+i)), meta.APIVersion, meta.Kind, rt)
		}
	case "triggers.tekton.dev/v1beta1/TriggerBinding":
		var o triggerBinding
		strict(t, where, d, &o)
		for _, p := range o.Spec.Params {
			if !strings.HasPrefix(p.Value, "$(body.") {
				t.Fatalf("%s: binding %s should read the webhook body, got %s", where, p.Name, p.Value)
			}
		}
	case "triggers.tekton.dev/v1beta1/EventListener":
		strict(t, where, d, &eventListener{})
	default:
		t.Fatalf("%s: unexpected %s %s: add it to the test", where, apiVersion, kind)
	}
}

// generatedName stands in for the API server, which names objects that
// only have a generateName before Tekton's webhook validates them.
func generatedName(name, generate string) string {
	if name == "" && generate != "" {
		return generate + "x1y2z"
	}
	return name
}

// The Triggers types are mirrored here: tektoncd/triggers cannot be built
// against pipeline v1.15.0 (its knative.dev/pkg is too old for it), so the
// Triggers objects are decoded strictly into these copies of their v1beta1
// shape, and the PipelineRun they create is validated with pipeline's types.
type objectMeta struct {
	Name         string            `json:"name,omitempty"`
	GenerateName string            `json:"generateName,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// typeMeta is what every Triggers object starts with.
type typeMeta struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
}

type triggerTemplate struct {
	typeMeta
	Spec struct {
		Params []struct {
			Name        string  `json:"name"`
			Description string  `json:"description"`
			Default     *string `json:"default,omitempty"`
		} `json:"params"`
		ResourceTemplates []rawJSON `json:"resourcetemplates"`
	} `json:"spec"`
}

type triggerBinding struct {
	typeMeta
	Spec struct {
		Params []struct {
			Name  string `json:"name"`
			Value string `json:"value"`
		} `json:"params"`
	} `json:"spec"`
}

type eventListener struct {
	typeMeta
	Spec struct {
		ServiceAccountName string `json:"serviceAccountName"`
		Triggers           []struct {
			Name         string `json:"name"`
			Interceptors []struct {
				Ref struct {
					Name string `json:"name"`
				} `json:"ref"`
				Params []struct {
					Name  string `json:"name"`
					Value any    `json:"value"`
				} `json:"params"`
			} `json:"interceptors,omitempty"`
			Bindings []struct {
				Ref string `json:"ref"`
			} `json:"bindings"`
			Template struct {
				Ref string `json:"ref"`
			} `json:"template"`
		} `json:"triggers"`
	} `json:"spec"`
}

type rawJSON []byte

func (r *rawJSON) UnmarshalJSON(b []byte) error { *r = append((*r)[:0], b...); return nil }

// Catalog conventions (the Tekton catalog's contribution guide).
func checkCatalogConventions(t *testing.T, where string, task *v1.Task) {
	t.Helper()
	if task.Labels["app.kubernetes.io/version"] == "" {
		t.Errorf("%s: no app.kubernetes.io/version label", where)
	}
	for _, a := range []string{"tekton.dev/pipelines.minVersion", "tekton.dev/categories", "tekton.dev/tags", "tekton.dev/displayName", "tekton.dev/platforms"} {
		if task.Annotations[a] == "" {
			t.Errorf("%s: no %s annotation", where, a)
		}
	}
	if task.Spec.Description == "" {
		t.Errorf("%s: no description", where)
	}
	for _, p := range task.Spec.Params {
		if p.Description == "" {
			t.Errorf("%s: param %s has no description", where, p.Name)
		}
	}
	for _, w := range task.Spec.Workspaces {
		if w.Description == "" {
			t.Errorf("%s: workspace %s has no description", where, w.Name)
		}
	}
	for _, r := range task.Spec.Results {
		if r.Description == "" {
			t.Errorf("%s: result %s has no description", where, r.Name)
		}
	}
}

func loadTask(t *testing.T, file string) *v1.Task {
	t.Helper()
	var task v1.Task
	strict(t, file, docs(t, filepath.Join(root, "tekton", file))[0], &task)
	task.SetDefaults(context.Background())
	return &task
}

// The README's Tekton tables list exactly the Tasks' params, workspaces
// and results.
func TestREADMETablesMatchTasks(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, file := range []string{"cipack-build.yaml", "cipack-rebase.yaml", "cipack-manifest.yaml"} {
		task := loadTask(t, file)
		section, ok := testenv.MarkdownSection(string(readme), "### Task `"+task.Name+"`")
		if !ok {
			t.Fatalf("README has no section for Task %s", task.Name)
		}
		var params, wss, results []string
		for _, p := range task.Spec.Params {
			params = append(params, p.Name)
		}
		for _, w := range task.Spec.Workspaces {
			wss = append(wss, w.Name)
		}
		for _, r := range task.Spec.Results {
			results = append(results, r.Name)
		}
		for _, c := range []struct {
			header string
			want   []string
		}{{"| Param |", params}, {"| Workspace |", wss}, {"| Result |", results}} {
			got := testenv.TableNames(section, c.header)
			sort.Strings(got)
			sort.Strings(c.want)
			if !slices.Equal(got, c.want) {
				t.Errorf("README %s table for %s lists %v; the Task has %v", c.header, task.Name, got, c.want)
			}
		}
	}
}
