package tektontest

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/cel-go/cel"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/util/jsonpath"
	"sigs.k8s.io/yaml"

	"github.com/cipack/cipack/internal/testenv"
)

// exampleDoc is one document of an example file, by kind and name.
func exampleDoc(t *testing.T, file, kind, docName string) []byte {
	t.Helper()
	for _, d := range docs(t, filepath.Join(root, "examples", "tekton", file)) {
		var meta typeMeta
		if err := yaml.Unmarshal(d, &meta); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if meta.Kind == kind && (docName == "" || meta.Metadata.Name == docName) {
			return d
		}
	}
	t.Fatalf("%s has no %s %q", file, kind, docName)
	return nil
}

// substitutedSpec renders the rebase Task for a TaskRun with these params
// and bound workspaces (Tekton's own substitution, as in render).
func substitutedSpec(t *testing.T, params v1.Params, bound ...string) *v1.TaskSpec {
	t.Helper()
	ctx := context.Background()
	task := loadTask(t, "cipack-rebase.yaml")
	tr := &v1.TaskRun{}
	tr.Name = "cipack-rebase-run"
	tr.Spec.TaskRef = &v1.TaskRef{Name: task.Name}
	tr.Spec.Params = params
	for _, w := range append([]string{"fleet"}, bound...) {
		tr.Spec.Workspaces = append(tr.Spec.Workspaces, v1.WorkspaceBinding{Name: w, EmptyDir: &corev1.EmptyDirVolumeSource{}})
	}
	tr.SetDefaults(ctx)
	if fe := tr.Validate(ctx); fe != nil && fe.Error() != "" {
		t.Fatalf("TaskRun: %v", fe)
	}
	spec := task.Spec.DeepCopy()
	spec = resources.ApplyParameters(spec, tr, spec.Params...)
	spec = resources.ApplyContexts(spec, task.Name, tr)
	spec = resources.ApplyWorkspaces(ctx, spec, spec.Workspaces, tr.Spec.Workspaces, map[string]corev1.Volume{})
	return resources.ApplyResults(spec)
}

func stepEnv(s v1.Step, key string) (string, bool) {
	for _, e := range s.Env {
		if e.Name == key {
			return e.Value, true
		}
	}
	return "", false
}

// Each mode of the rebase Task runs exactly one step, picked by the steps'
// when expressions (evaluated with Tekton's own code after substitution);
// the mode params reach that step as cipack's CIPACK_* variables, and the
// relative paths resolve in the reports workspace.
func TestRebaseTaskModesPickOneStep(t *testing.T) {
	for _, c := range []struct {
		name   string
		params v1.Params
		step   string
		env    map[string]string
	}{
		{"sweep", nil, "rebase", map[string]string{"CIPACK_SHARD": "", "CIPACK_STAGE": "false", "CIPACK_RUN_IMAGE_CHANGED": "", "CIPACK_REPORT_FILE": ""}},
		{"shard", v1.Params{str("SHARD", "2/4"), str("REPORT_FILE", "shard-2.json")}, "rebase", map[string]string{"CIPACK_SHARD": "2/4", "CIPACK_REPORT_FILE": "shard-2.json"}},
		{"stage", v1.Params{str("STAGE", "true"), str("REPORT_FILE", "plan.json")}, "rebase", map[string]string{"CIPACK_STAGE": "true"}},
		{"run image changed", v1.Params{str("RUN_IMAGE_CHANGED", "registry.example/base/run:jammy\nregistry.example/base/run:noble\n")}, "rebase",
			map[string]string{"CIPACK_RUN_IMAGE_CHANGED": "registry.example/base/run:jammy\nregistry.example/base/run:noble\n"}},
		{"merge", v1.Params{str("MERGE_REPORTS", "shard-1.json\nshard-2.json\n"), str("REPORT_FILE", "fleet.json")}, "merge-reports",
			map[string]string{"CIPACK_MERGE_REPORTS": "shard-1.json\nshard-2.json\n", "CIPACK_REPORT_FILE": "fleet.json", "CIPACK_PROMOTE": ""}},
		{"promote", v1.Params{str("PROMOTE_PLAN", "plan.json")}, "promote", map[string]string{"CIPACK_PROMOTE": "plan.json", "CIPACK_MERGE_REPORTS": "", "CIPACK_STAGE": "false", "CIPACK_SHARD": ""}},
	} {
		t.Run(c.name, func(t *testing.T) {
			spec := substitutedSpec(t, c.params, "reports")
			var runs []string
			for _, s := range spec.Steps {
				if s.When.AllowsExecution(map[string]bool{}) {
					runs = append(runs, s.Name)
				}
			}
			if len(runs) != 1 || runs[0] != c.step {
				t.Fatalf("steps run: %v, want only %s", runs, c.step)
			}
			i := slices.IndexFunc(spec.Steps, func(s v1.Step) bool { return s.Name == c.step })
			s := spec.Steps[i]
			for k, want := range c.env {
				if got, ok := stepEnv(s, k); !ok || got != want {
					t.Errorf("step %s: %s=%q (set: %v), want %q", s.Name, k, got, ok, want)
				}
			}
			if s.WorkingDir != "/workspace/reports" {
				t.Errorf("step %s works in %q, want the reports workspace", s.Name, s.WorkingDir)
			}
			// The sweep reads the fleet, and so does a promote (its
			// runImage entries are the run images candidates must sit on).
			if c.step != "merge-reports" && !slices.Contains(s.Args, "--config") {
				t.Errorf("step %s lost its --config: %v", s.Name, s.Args)
			}
			if c.step == "merge-reports" && slices.Contains(s.Args, "--config") {
				t.Errorf("step %s passes --config, which cipack refuses there: %v", s.Name, s.Args)
			}
		})
	}
	// Without the reports workspace the sweep works where it did before.
	spec := substitutedSpec(t, nil)
	if spec.Steps[0].WorkingDir != "" {
		t.Fatalf("with no reports workspace the sweep works in %q", spec.Steps[0].WorkingDir)
	}
}

// The sharded example's matrix fans out (Tekton's own FanOut) into one
// TaskRun per shard, each with its own report file, and the finally Task
// merges exactly those reports.
func TestShardedPipelineFansOutAndMergesEveryShard(t *testing.T) {
	var p v1.Pipeline
	strict(t, "rebase-sharded-pipeline.yaml", exampleDoc(t, "rebase-sharded-pipeline.yaml", "Pipeline", ""), &p)
	validateTekton(t, "rebase-sharded-pipeline.yaml", &p)
	var sweep *v1.PipelineTask
	for i := range p.Spec.Tasks {
		if p.Spec.Tasks[i].Name == "sweep" {
			sweep = &p.Spec.Tasks[i]
		}
	}
	if sweep == nil || sweep.Matrix == nil {
		t.Fatal("no matrix task named sweep")
	}
	combos := sweep.Matrix.FanOut()
	if len(combos) != 4 || sweep.Matrix.CountCombinations() != 4 {
		t.Fatalf("%d combinations (%d counted), want 4: %v", len(combos), sweep.Matrix.CountCombinations(), combos)
	}
	var shards, files []string
	for _, ps := range combos {
		m := map[string]string{}
		for _, p := range ps {
			m[p.Name] = p.Value.StringVal
		}
		if m["SHARD"] == "" || m["REPORT_FILE"] == "" || strings.Contains(m["REPORT_FILE"], "/") {
			t.Fatalf("combination %v: each shard needs SHARD and its own REPORT_FILE in the workspace's top", m)
		}
		shards, files = append(shards, m["SHARD"]), append(files, m["REPORT_FILE"])
	}
	slices.Sort(shards)
	if strings.Join(shards, ",") != "1/4,2/4,3/4,4/4" {
		t.Fatalf("shards %v", shards)
	}
	if len(p.Spec.Finally) != 1 {
		t.Fatalf("want one finally Task, the merge: %v", p.Spec.Finally)
	}
	merge := p.Spec.Finally[0]
	var merged []string
	for _, prm := range merge.Params {
		if prm.Name == "MERGE_REPORTS" {
			merged = strings.Fields(prm.Value.StringVal)
		}
	}
	slices.Sort(merged)
	slices.Sort(files)
	if !slices.Equal(merged, files) {
		t.Fatalf("the merge reads %v; the shards write %v", merged, files)
	}
	for _, pt := range append([]v1.PipelineTask{*sweep}, merge) {
		if !slices.ContainsFunc(pt.Workspaces, func(w v1.WorkspacePipelineTaskBinding) bool { return w.Name == "reports" && w.Workspace == "reports" }) {
			t.Fatalf("%s does not share the reports workspace", pt.Name)
		}
	}
}

// The staged example runs stage (STAGE true, the plan into reports) then
// verify then promote (that plan), in that order.
func TestStagedRolloutPipelineOrder(t *testing.T) {
	var p v1.Pipeline
	strict(t, "staged-rollout-pipeline.yaml", exampleDoc(t, "staged-rollout-pipeline.yaml", "Pipeline", ""), &p)
	validateTekton(t, "staged-rollout-pipeline.yaml", &p)
	param := func(pt v1.PipelineTask, n string) string {
		for _, prm := range pt.Params {
			if prm.Name == n {
				return prm.Value.StringVal
			}
		}
		return ""
	}
	ts := p.Spec.Tasks
	if len(ts) != 3 || ts[0].Name != "stage" || ts[1].Name != "verify" || ts[2].Name != "promote" {
		t.Fatalf("tasks %v", ts)
	}
	if !slices.Equal(ts[1].RunAfter, []string{"stage"}) || !slices.Equal(ts[2].RunAfter, []string{"verify"}) {
		t.Fatalf("order: verify after %v, promote after %v", ts[1].RunAfter, ts[2].RunAfter)
	}
	plan := param(ts[0], "REPORT_FILE")
	if param(ts[0], "STAGE") != "true" || plan == "" || param(ts[1], "PLAN") != plan || param(ts[2], "PROMOTE_PLAN") != plan {
		t.Fatalf("stage writes %q (STAGE %q), verify reads %q, promote reads %q", plan, param(ts[0], "STAGE"), param(ts[1], "PLAN"), param(ts[2], "PROMOTE_PLAN"))
	}
	if got := param(ts[2], "PROMOTE_DIGEST"); got != "$(tasks.stage.results.REPORT_DIGEST)" {
		t.Fatalf("promote checks the plan against %q, not the stage's REPORT_DIGEST", got)
	}
	if !slices.ContainsFunc(loadTask(t, "cipack-rebase.yaml").Spec.Results, func(r v1.TaskResult) bool { return r.Name == "REPORT_DIGEST" }) {
		t.Fatal("cipack-rebase declares no REPORT_DIGEST result")
	}
	// The placeholder verify Task meets the restricted standard too.
	var verify v1.Task
	strict(t, "staged-rollout-pipeline.yaml", exampleDoc(t, "staged-rollout-pipeline.yaml", "Task", "cipack-verify-candidates"), &verify)
	verify.SetDefaults(context.Background())
	pod := podFor(t, &verify, v1.Params{str("PLAN", plan)}, []v1.WorkspaceBinding{emptyDirWS("reports")}, nil)
	if forbidden := restricted(t, pod); len(forbidden) > 0 {
		t.Fatalf("the verify Task breaks the restricted standard: %v", forbidden)
	}
}

// triggersEval evaluates a TriggerBinding value the way Tekton Triggers
// does: each $(body.…)/$(header.…) is a JSONPath ({.body.…}) evaluated
// with Kubernetes' jsonpath over the event, strings as they are.
// tektoncd/triggers itself cannot be built here (the Go module proxy
// refuses it, and its knative.dev/pkg is behind pipeline v1.15.0's).
func triggersEval(t *testing.T, value string, event map[string]any) string {
	t.Helper()
	var out strings.Builder
	for {
		i := strings.Index(value, "$(")
		if i < 0 {
			out.WriteString(value)
			return out.String()
		}
		out.WriteString(value[:i])
		j := strings.Index(value[i:], ")")
		if j < 0 {
			t.Fatalf("unterminated expression in %q", value)
		}
		path := value[i+2 : i+j]
		value = value[i+j+1:]
		jp := jsonpath.New("binding").AllowMissingKeys(false)
		if err := jp.Parse("{." + path + "}"); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		res, err := jp.FindResults(event)
		if err != nil || len(res) != 1 || len(res[0]) != 1 {
			t.Fatalf("%s: %v %v", path, res, err)
		}
		v := res[0][0].Interface()
		if s, ok := v.(string); ok {
			out.WriteString(s)
		} else {
			b, _ := json.Marshal(v)
			out.Write(b)
		}
	}
}

// celFilter runs a cel interceptor's filter as Triggers' CEL interceptor
// does (body and header as variables; the standard library's has/size).
func celFilter(t *testing.T, filter string, body map[string]any) bool {
	t.Helper()
	env, err := cel.NewEnv(cel.Variable("body", cel.DynType), cel.Variable("header", cel.MapType(cel.StringType, cel.ListType(cel.StringType))))
	if err != nil {
		t.Fatal(err)
	}
	ast, iss := env.Compile(filter)
	if iss.Err() != nil {
		t.Fatalf("filter %q: %v", filter, iss.Err())
	}
	prg, err := env.Program(ast)
	if err != nil {
		t.Fatal(err)
	}
	out, _, err := prg.Eval(map[string]any{"body": body, "header": map[string][]string{}})
	if err != nil {
		return false // Triggers drops the event when the filter errs
	}
	b, ok := out.Value().(bool)
	return ok && b
}

// The patch-on-push EventListener: for each recorded payload (testdata,
// shaped as each product documents it) only the right trigger's filter
// passes, its binding picks the pushed run image, and the TaskRun the
// template renders validates, passes RUN_IMAGE_CHANGED to the sweep, and
// renders a pod that meets the restricted standard.
func TestPatchOnPushPicksTheRunImage(t *testing.T) {
	const file = "patch-on-push.yaml"
	var el eventListener
	strict(t, file, exampleDoc(t, file, "EventListener", "cipack-patch-on-push"), &el)
	var tt triggerTemplate
	strict(t, file, exampleDoc(t, file, "TriggerTemplate", "cipack-patch-on-push"), &tt)
	for _, c := range []struct {
		payload, trigger, want string // trigger "": no trigger fires
	}{
		{"distribution-push.json", "distribution-push", "registry.example/base/run:jammy"},
		{"distribution-blob-push.json", "", ""},
		{"distribution-pull.json", "", ""},
		{"harbor-push-artifact.json", "harbor-push", "harbor.example/base/run:jammy"},
		{"harbor-pull-artifact.json", "", ""},
	} {
		t.Run(c.payload, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", c.payload))
			if err != nil {
				t.Fatal(err)
			}
			var body map[string]any
			if err := json.Unmarshal(b, &body); err != nil {
				t.Fatal(err)
			}
			var fired []string
			for _, tr := range el.Spec.Triggers {
				pass := true
				for _, ic := range tr.Interceptors {
					if ic.Ref.Name != "cel" {
						t.Fatalf("trigger %s: interceptor %s", tr.Name, ic.Ref.Name)
					}
					for _, p := range ic.Params {
						if p.Name == "filter" {
							pass = pass && celFilter(t, p.Value.(string), body)
						}
					}
				}
				if pass {
					fired = append(fired, tr.Name)
				}
			}
			if c.trigger == "" {
				if len(fired) > 0 {
					t.Fatalf("triggers %v fire on %s", fired, c.payload)
				}
				return
			}
			if len(fired) != 1 || fired[0] != c.trigger {
				t.Fatalf("triggers fired: %v, want %s", fired, c.trigger)
			}
			tr := el.Spec.Triggers[0]
			for _, x := range el.Spec.Triggers {
				if x.Name == c.trigger {
					tr = x
				}
			}
			if tr.Template.Ref != tt.Metadata.Name || len(tr.Bindings) != 1 {
				t.Fatalf("trigger %s: template %s, bindings %v", tr.Name, tr.Template.Ref, tr.Bindings)
			}
			var tb triggerBinding
			strict(t, file, exampleDoc(t, file, "TriggerBinding", tr.Bindings[0].Ref), &tb)
			values := map[string]string{}
			for _, p := range tb.Spec.Params {
				values[p.Name] = triggersEval(t, p.Value, map[string]any{"body": body, "header": map[string]any{}})
			}
			if values["run-image"] != c.want {
				t.Fatalf("run-image %q, want %q", values["run-image"], c.want)
			}
			if _, err := name.ParseReference(values["run-image"], name.StrictValidation); err != nil {
				t.Fatalf("run-image %q: %v", values["run-image"], err)
			}
			// The template, as Triggers resolves it: $(tt.params.NAME)
			// replaced by the JSON-escaped value.
			for _, p := range tt.Spec.Params {
				if _, ok := values[p.Name]; !ok && p.Default == nil {
					t.Fatalf("the template's param %s is not bound", p.Name)
				}
			}
			rendered := string(tt.Spec.ResourceTemplates[0])
			for k, v := range values {
				esc, _ := json.Marshal(v)
				rendered = strings.ReplaceAll(rendered, "$(tt.params."+k+")", string(esc[1:len(esc)-1]))
			}
			if strings.Contains(rendered, "$(tt.") {
				t.Fatalf("unresolved template params: %s", rendered)
			}
			var run v1.TaskRun
			strict(t, "rendered TaskRun", []byte(rendered), &run)
			run.Name = generatedName(run.Name, run.GenerateName)
			validateTekton(t, "rendered TaskRun", &run)
			if run.Spec.TaskRef == nil || run.Spec.TaskRef.Name != "cipack-rebase" {
				t.Fatalf("the TaskRun runs %v", run.Spec.TaskRef)
			}
			task := loadTask(t, "cipack-rebase.yaml")
			pod := podFor(t, task, run.Spec.Params, run.Spec.Workspaces, nil)
			if forbidden := restricted(t, pod); len(forbidden) > 0 {
				t.Fatalf("restricted forbids %v", forbidden)
			}
			var got string
			for _, ctr := range pod.Spec.Containers {
				if ctr.Name == "step-rebase" {
					for _, e := range ctr.Env {
						if e.Name == "CIPACK_RUN_IMAGE_CHANGED" {
							got = e.Value
						}
					}
				}
			}
			if got != c.want {
				t.Fatalf("the sweep step gets CIPACK_RUN_IMAGE_CHANGED=%q, want %q", got, c.want)
			}
		})
	}
}

// End to end, the new modes of the rebase Task, each its own rendered
// step run on this machine: stage (the tag stays, the plan names the
// candidate), promote (the tag moves to it), then a sweep sharded in two
// after the run image's next push (RUN_IMAGE_CHANGED) and the merge of the
// two reports. The paths are under the reports workspace's mount path
// (these stand-in steps do not honour workingDir).
func TestRebaseTaskStagePromoteShardMerge(t *testing.T) {
	needFixture(t)
	h := fx.Registry.Host
	runImage := h + "/tekton-modes/run:latest"
	push := func(version string) {
		img, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: version})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := testenv.Push(context.Background(), runImage, img); err != nil {
			t.Fatal(err)
		}
	}
	head := func(ref string) string {
		r, _ := name.ParseReference(ref)
		d, err := remote.Head(r)
		if err != nil {
			t.Fatal(err)
		}
		return d.Digest.String()
	}
	push("v1")
	app := h + "/tekton-modes/app:latest"
	build := render(t, loadTask(t, "cipack-build.yaml"), v1.Params{
		str("IMAGE", app), str("BUILDER_IMAGE", fx.BuilderImage), str("SOURCE_SUBPATH", "apps/hello"), str("RUN_IMAGE", runImage),
	}, map[string]string{"source": appWorkspace(t)})
	if err := build.run(t, 0, "cipack"); err != nil {
		t.Fatal(err)
	}
	if err := build.run(t, 1, "builder"); err != nil {
		t.Fatalf("%v\n%s", err, build.output.String())
	}
	built := build.result(t, "IMAGE_DIGEST")
	push("v2")
	fleet, reports := dir(t), dir(t)
	if err := os.WriteFile(filepath.Join(fleet, "fleet.yaml"), []byte("images:\n  - image: "+app+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ws := map[string]string{"fleet": fleet, "reports": reports}
	step := func(params v1.Params, stepName string) *taskRun {
		t.Helper()
		run := render(t, loadTask(t, "cipack-rebase.yaml"), params, ws)
		i := slices.IndexFunc(run.spec.Steps, func(s v1.Step) bool { return s.Name == stepName })
		if !run.spec.Steps[i].When.AllowsExecution(map[string]bool{}) {
			t.Fatalf("step %s would be skipped with %v", stepName, params)
		}
		if err := run.run(t, i, "cipack"); err != nil {
			t.Fatalf("step %s: %v\n%s", stepName, err, run.output.String())
		}
		return run
	}
	readReport := func(file string) map[string]any {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(reports, file))
		if err != nil {
			t.Fatal(err)
		}
		var r map[string]any
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}

	// Stage: the tag does not move; the plan holds the candidate.
	stage := step(v1.Params{str("STAGE", "true"), str("REPORT_FILE", "/workspace/reports/plan.json")}, "rebase")
	if got := head(app); got != built {
		t.Fatalf("a staged sweep moved the tag: %s, built %s\n%s", got, built, stage.output.String())
	}
	plan := readReport("plan.json")
	images := plan["images"].([]any)
	cand := images[0].(map[string]any)
	if len(images) != 1 || cand["staged"] != true || cand["newDigest"] == "" || cand["newDigest"] == built {
		t.Fatalf("plan %v", plan)
	}

	// The plan's digest is a result; a promote given another digest (the
	// plan changed in the workspace since) moves nothing.
	digest := stage.result(t, "REPORT_DIGEST")
	if raw, _ := os.ReadFile(filepath.Join(reports, "plan.json")); digest != fmt.Sprintf("sha256:%x", sha256.Sum256(raw)) {
		t.Fatalf("REPORT_DIGEST %q is not plan.json's", digest)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	refused := render(t, loadTask(t, "cipack-rebase.yaml"), v1.Params{str("PROMOTE_PLAN", "/workspace/reports/plan.json"), str("PROMOTE_DIGEST", other)}, ws)
	i := slices.IndexFunc(refused.spec.Steps, func(s v1.Step) bool { return s.Name == "promote" })
	if err := refused.run(t, i, "cipack"); err == nil || !strings.Contains(refused.output.String(), "not the staged plan") || head(app) != built {
		t.Fatalf("a promote with another plan digest: %v, %s at %s\n%s", err, app, head(app), refused.output.String())
	}

	// Promote: the tag moves to the candidate.
	promote := step(v1.Params{str("PROMOTE_PLAN", "/workspace/reports/plan.json"), str("PROMOTE_DIGEST", digest)}, "promote")
	if got := head(app); got != cand["newDigest"] {
		t.Fatalf("after the promotion %s is at %s, want the candidate %s\n%s", app, got, cand["newDigest"], promote.output.String())
	}
	if promote.result(t, "FAILED") != "0" {
		t.Fatalf("FAILED %s\n%s", promote.result(t, "FAILED"), promote.output.String())
	}

	// The run image moves again: two shards, then the merge.
	promoted := head(app)
	push("v3")
	for _, k := range []string{"1", "2"} {
		step(v1.Params{str("SHARD", k+"/2"), str("RUN_IMAGE_CHANGED", runImage), str("REPORT_FILE", "/workspace/reports/shard-"+k+".json")}, "rebase")
		if got := readReport("shard-" + k + ".json")["shard"]; got != k+"/2" {
			t.Fatalf("shard %s's report says shard %v", k, got)
		}
	}
	merge := step(v1.Params{str("MERGE_REPORTS", "/workspace/reports/shard-1.json\n/workspace/reports/shard-2.json\n"), str("REPORT_FILE", "/workspace/reports/fleet.json")}, "merge-reports")
	if got := merge.result(t, "REBASED"); got != "1" {
		t.Fatalf("merged REBASED %q\n%s", got, merge.output.String())
	}
	if n := len(readReport("fleet.json")["images"].([]any)); n != 1 {
		t.Fatalf("the merged report lists %d images", n)
	}
	if got := head(app); got == promoted {
		t.Fatalf("the sharded sweep did not rebase %s", app)
	}

	// A merge missing a shard fails loudly.
	run := render(t, loadTask(t, "cipack-rebase.yaml"), v1.Params{str("MERGE_REPORTS", "/workspace/reports/shard-1.json")}, ws)
	if err := run.run(t, 1, "cipack"); err == nil || !strings.Contains(run.output.String(), "shard") {
		t.Fatalf("a merge of one shard of two passed: %v\n%s", err, run.output.String())
	}
}
