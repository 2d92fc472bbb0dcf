package tektontest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	v1 "github.com/tektoncd/pipeline/pkg/apis/pipeline/v1"

	"github.com/cipack/cipack/internal/testenv"
)

// fsGroup does to a volume what the kubelet does for a pod's fsGroup:
// the group owns everything, may read and write it, and new files inherit
// the group (setgid directories).
func fsGroup(t *testing.T, dir string, gid int) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := os.Lchown(p, -1, gid); err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			return err
		}
		mode := fi.Mode().Perm() | 0o060
		if d.IsDir() {
			return os.Chmod(p, mode|0o010|fs.ModeSetgid)
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// cipack-build-restricted runs as the builder's CNB user with the
// workspaces given to its group (runAsUser, runAsGroup and fsGroup in the
// podTemplate, as README says), the install step as the cipack image's
// non-root user: it builds and pushes, the image works in the source
// workspace's path (no /workspace bind), and cipack warns that the
// buildpacks can reach the credentials.
func TestRestrictedBuildTaskRunsAsTheCNBUser(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/tekton-restricted/app:latest"
	source := appWorkspace(t)
	cache := dir(t)
	// Push credentials (the loopback registry takes any): the build code
	// runs as the user holding them, which cipack says.
	creds := dir(t)
	auth := base64.StdEncoding.EncodeToString([]byte("ci:hunter2"))
	if err := os.WriteFile(filepath.Join(creds, "config.json"), []byte(`{"auths":{"`+fx.Registry.Host+`":{"auth":"`+auth+`"}}}`), 0o640); err != nil {
		t.Fatal(err)
	}
	run := render(t, loadTask(t, "cipack-build-restricted.yaml"), v1.Params{
		str("IMAGE", image), str("BUILDER_IMAGE", fx.BuilderImage), str("SOURCE_SUBPATH", "apps/hello"), str("PROCESS_TYPE", "web"),
	}, map[string]string{"source": source, "cache": cache, "dockerconfig": creds})
	for _, d := range append([]string{source, cache, creds, run.results}, mapValues(run.volumes)...) {
		fsGroup(t, d, fx.GID)
	}
	run.asUser = "65532:" + strconv.Itoa(fx.GID) // distroless nonroot, in the pod's fsGroup
	if err := run.run(t, 0, "cipack"); err != nil {
		t.Fatalf("install step as non-root: %v\n%s", err, run.output.String())
	}
	run.asUser = strconv.Itoa(fx.UID) + ":" + strconv.Itoa(fx.GID)
	if err := run.run(t, 1, "builder"); err != nil {
		t.Fatalf("build step as the CNB user: %v\n%s", err, run.output.String())
	}
	url, digest := run.result(t, "IMAGE_URL"), run.result(t, "IMAGE_DIGEST")
	r, _ := name.ParseReference(url)
	if d, err := remote.Head(r); err != nil || d.Digest.String() != digest {
		t.Fatalf("%s: %v %v, IMAGE_DIGEST %s", url, d, err, digest)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	if want := "/workspace/source/apps/hello"; cf.Config.WorkingDir != want {
		t.Errorf("working directory %q, want the source workspace's path %s", cf.Config.WorkingDir, want)
	}
	if out, err := testenv.RunImageProcess(context.Background(), url+"@"+digest, "web", dir(t)); err != nil || out == "" {
		t.Fatalf("the image: %q %v", out, err)
	}
	for _, want := range []string{"not /workspace", "warning: cipack runs as uid " + strconv.Itoa(fx.UID) + ", not root"} {
		if !strings.Contains(run.output.String(), want) {
			t.Errorf("the log lacks %q:\n%s", want, run.output.String())
		}
	}
}

func mapValues(m map[string]string) []string {
	var out []string
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// cipack-build-restricted is cipack-build but for who runs it: the same
// params, workspaces, results, volumes and commands (README says so).
func TestRestrictedBuildTaskMatchesBuildTask(t *testing.T) {
	build, restricted := loadTask(t, "cipack-build.yaml"), loadTask(t, "cipack-build-restricted.yaml")
	a, b := build.Spec.DeepCopy(), restricted.Spec.DeepCopy()
	if b.StepTemplate == nil || b.StepTemplate.SecurityContext == nil || *b.StepTemplate.SecurityContext.RunAsNonRoot != true {
		t.Fatal("cipack-build-restricted should run its steps as non-root")
	}
	for _, s := range [][]v1.Step{a.Steps, b.Steps} {
		for i := range s {
			s[i].SecurityContext = nil
		}
	}
	a.Description, b.Description, b.StepTemplate = "", "", nil
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Fatalf("cipack-build-restricted differs from cipack-build beyond its security context:\n%s\n%s", ja, jb)
	}
}
