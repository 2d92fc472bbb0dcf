package tektontest

import (
	"context"
	"strings"
	"testing"

	"github.com/tektoncd/pipeline/pkg/apis/config"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline"
	"github.com/tektoncd/pipeline/pkg/apis/pipeline/pod"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"
	tpod "github.com/tektoncd/pipeline/pkg/pod"
	"github.com/tektoncd/pipeline/pkg/reconciler/taskrun/resources"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	fakek8s "k8s.io/client-go/kubernetes/fake"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// podFor renders the pod Tekton's controller makes for a TaskRun of task:
// the TaskRun validated, the Task's params, context, workspaces and
// results substituted (pkg/reconciler/taskrun/resources), then
// pkg/pod's Builder, with the feature flag a restricted namespace needs
// (set-security-context: Tekton's own init containers then meet the
// restricted standard too). The one stand-in: Tekton looks up the
// ENTRYPOINT of a step image that has no command in its registry (the
// Builder's EntrypointCache, which cannot be implemented outside pkg/pod);
// here such steps get the cipack image's ko entrypoint as their command.
func podFor(t *testing.T, task *v1.Task, params v1.Params, workspaces []v1.WorkspaceBinding, podTemplate *pod.Template) *corev1.Pod {
	t.Helper()
	cfg := config.FromContextOrDefaults(context.Background())
	cfg.FeatureFlags.SetSecurityContext = true
	ctx := config.ToContext(context.Background(), cfg)
	tr := &v1.TaskRun{ObjectMeta: metav1.ObjectMeta{Name: task.Name + "-run", Namespace: "default"}}
	tr.Spec.TaskRef = &v1.TaskRef{Name: task.Name}
	tr.Spec.Params = params
	tr.Spec.Workspaces = workspaces
	tr.Spec.PodTemplate = podTemplate
	tr.SetDefaults(ctx)
	if fe := tr.Validate(ctx); fe != nil && fe.Error() != "" {
		t.Fatalf("TaskRun: %v", fe)
	}
	spec := task.Spec.DeepCopy()
	spec = resources.ApplyParameters(spec, tr, spec.Params...)
	spec = resources.ApplyContexts(spec, task.Name, tr)
	spec = resources.ApplyWorkspaces(ctx, spec, spec.Workspaces, tr.Spec.Workspaces, map[string]corev1.Volume{})
	spec = resources.ApplyResults(spec)
	for i := range spec.Steps {
		if len(spec.Steps[i].Command) == 0 && spec.Steps[i].Script == "" {
			spec.Steps[i].Command = []string{"/ko-app/cipack"}
		}
	}
	b := tpod.Builder{
		Images:     pipeline.Images{EntrypointImage: "entrypoint-image", ShellImage: "shell-image", WorkingDirInitImage: "workingdir-image", SidecarLogResultsImage: "sidecar-image"},
		KubeClient: fakek8s.NewSimpleClientset(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: "default"}}),
	}
	p, err := b.Build(ctx, tr, *spec)
	if err != nil {
		t.Fatalf("Tekton's pod builder: %v", err)
	}
	return p
}

// restricted evaluates a pod with the Pod Security Admission's own policy
// code at level restricted, latest version, and returns what it forbids.
func restricted(t *testing.T, p *corev1.Pod) []string {
	t.Helper()
	ev, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	var forbidden []string
	for _, r := range ev.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &p.ObjectMeta, &p.Spec) {
		if !r.Allowed {
			forbidden = append(forbidden, r.ForbiddenReason+": "+r.ForbiddenDetail)
		}
	}
	return forbidden
}

func emptyDirWS(name string) v1.WorkspaceBinding {
	return v1.WorkspaceBinding{Name: name, EmptyDir: &corev1.EmptyDirVolumeSource{}}
}

// The rebase, manifest and restricted build Tasks meet the restricted Pod
// Security Standard as Tekton renders their pods; cipack-build does not
// (its build step runs as root, see README), which the policy reports.
func TestTasksMeetRestrictedPodSecurity(t *testing.T) {
	secret := v1.WorkspaceBinding{Name: "dockerconfig", Secret: &corev1.SecretVolumeSource{SecretName: "push-creds"}}
	img := str("CIPACK_IMAGE", "ghcr.io/cipack/cipack@sha256:"+strings.Repeat("a", 64))
	cnb := func() *pod.Template {
		uid, gid := int64(1002), int64(1000)
		return &pod.Template{SecurityContext: &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid, FSGroup: &gid}}
	}
	buildParams := v1.Params{str("IMAGE", "registry.example/team/app:latest"), str("BUILDER_IMAGE", "registry.example/builder:1"), img}
	buildWS := []v1.WorkspaceBinding{emptyDirWS("source"), emptyDirWS("cache"), secret, emptyDirWS("sbom")}
	for _, c := range []struct {
		file        string
		params      v1.Params
		workspaces  []v1.WorkspaceBinding
		podTemplate *pod.Template
		want        string // "" passes; else a reason the policy gives
	}{
		{"cipack-rebase.yaml", v1.Params{img}, []v1.WorkspaceBinding{{Name: "fleet", ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "fleet"}}}, secret}, nil, ""},
		{"cipack-manifest.yaml", v1.Params{str("IMAGE", "registry.example/team/app:latest"), arr("SOURCES", "registry.example/team/app:amd64", "registry.example/team/app:arm64"), img}, []v1.WorkspaceBinding{secret}, nil, ""},
		{"cipack-build-restricted.yaml", buildParams, buildWS, cnb(), ""},
		{"cipack-build-restricted.yaml", buildParams, buildWS, nil, ""},
		{"cipack-build.yaml", buildParams, buildWS, nil, "runAsUser=0"},
	} {
		t.Run(c.file, func(t *testing.T) {
			p := podFor(t, loadTask(t, c.file), c.params, c.workspaces, c.podTemplate)
			forbidden := restricted(t, p)
			if c.want == "" && len(forbidden) > 0 {
				t.Fatalf("%s breaks the restricted Pod Security Standard: %v", c.file, forbidden)
			}
			if c.want != "" && !strings.Contains(strings.Join(forbidden, "\n"), c.want) {
				t.Fatalf("%s: the policy should forbid %s, got %v", c.file, c.want, forbidden)
			}
			t.Logf("%s: %d containers, %d init containers; restricted forbids %v", c.file, len(p.Spec.Containers), len(p.Spec.InitContainers), forbidden)
		})
	}
}
