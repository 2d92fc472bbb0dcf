package tektontest

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	prresources "github.com/tektoncd/pipeline/pkg/reconciler/pipelinerun/resources"

	"github.com/cipack/cipack/internal/testenv"
)

// The Tekton quick start of docs/quickstart.md: the PipelineRun decodes
// strictly and validates with Tekton's types; Tekton's own parameter
// substitution gives its build task's params, which then run
// tekton/cipack-build.yaml on the example app at the workspace root (where
// git-clone leaves a repository). The git-clone Task and the resolvers
// need a cluster and the network: not run here.
func TestQuickStartTekton(t *testing.T) {
	block, err := testenv.QuickStart("tekton")
	if err != nil {
		t.Fatal(err)
	}
	var pr v1.PipelineRun
	strict(t, "docs/quickstart.md tekton", []byte(block), &pr)
	pr.Name = generatedName(pr.Name, pr.GenerateName) // as the API server names it
	validateTekton(t, "docs/quickstart.md tekton", &pr)
	spec, err := prresources.ApplyParameters(pr.Spec.PipelineSpec, &pr)
	if err != nil {
		t.Fatal(err)
	}
	var build *v1.PipelineTask
	for i, task := range spec.Tasks {
		if task.Name == "build" {
			build = &spec.Tasks[i]
		}
	}
	if build == nil || build.TaskRef == nil || build.TaskRef.Resolver != "git" || gitPath(build.TaskRef) != "tekton/cipack-build.yaml" {
		t.Fatalf("the quick start's build task does not take tekton/cipack-build.yaml through the git resolver: %+v", build)
	}
	needFixture(t)
	params := v1.Params{}
	for _, p := range build.Params {
		v := strings.ReplaceAll(p.Value.StringVal, "heroku/builder:24", fx.BuilderImage)
		params = append(params, str(p.Name, strings.ReplaceAll(v, "ghcr.io/OWNER/", fx.Registry.Host+"/quickstart/")))
	}
	source := dir(t)
	app, err := os.ReadFile(filepath.Join(root, "examples", "app", "app.sh"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(source, "app.sh"), app, 0o644); err != nil {
		t.Fatal(err)
	}
	run := render(t, loadTask(t, "cipack-build.yaml"), params, map[string]string{"source": source, "dockerconfig": dir(t)})
	for i, image := range []string{"cipack", "builder"} {
		if err := run.run(t, i, image); err != nil {
			t.Fatalf("step %d: %v\n%s", i, err, run.output.String())
		}
	}
	image := fx.Registry.Host + "/quickstart/my-app:latest"
	if got := run.result(t, "IMAGE_URL"); got != image {
		t.Fatalf("IMAGE_URL %q, want %q", got, image)
	}
	digest := run.result(t, "IMAGE_DIGEST")
	if testenv.MustHead(t, image).String() != digest {
		t.Fatalf("%s is not IMAGE_DIGEST %s", image, digest)
	}
	out, err := testenv.RunImageProcess(context.Background(), image+"@"+digest, "web", dir(t))
	if err != nil || !strings.Contains(out, "Hello from cipack!") {
		t.Fatalf("the image printed %q (%v)", out, err)
	}
}

func gitPath(ref *v1.TaskRef) string {
	for _, p := range ref.Params {
		if p.Name == "pathInRepo" {
			return p.Value.StringVal
		}
	}
	return ""
}
