package acttest

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/testenv"
)

// The action's buildpacks and exec-env inputs, on a plain runner (pull
// mode): a buildpack kept in the repository runs before the builder's
// order, found by its path relative to the workspace, and sees the
// execution environment it was given.
func TestBuildActionRunsARepositoryBuildpack(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/gha-bp/app:latest"
	r := newRepo(t, map[string]string{
		".github/workflows/build.yml": consumer(`          image: ` + image + `
          builder: ` + fx.BuilderImage + `
          buildpacks: |
            .cipack/buildpacks/hello
            urn:cnb:builder
          exec-env: test`),
		".cipack/buildpacks/hello/buildpack.toml": "api = \"0.12\"\n[buildpack]\nid = \"test/hello\"\nversion = \"1.0.0\"\n",
		".cipack/buildpacks/hello/bin/detect":     "#!/bin/sh\nexit 0\n",
		".cipack/buildpacks/hello/bin/build":      "#!/bin/sh\necho \"hello from the repository's buildpack, exec env $CNB_EXEC_ENV\"\n",
	}).onPlainHost()
	res := r.run(t, "build.yml", "push")
	if res.code != 0 {
		t.Fatalf("act exited %d:\n%s", res.code, res.out)
	}
	if !strings.Contains(res.out, "hello from the repository's buildpack, exec env test") {
		t.Fatalf("the repository's buildpack did not run with exec env test:\n%s", res.out)
	}
	var md struct {
		Buildpacks []struct{ ID string } `json:"buildpacks"`
	}
	if err := json.Unmarshal([]byte(testenv.MustConfig(t, image).Config.Labels["io.buildpacks.build.metadata"]), &md); err != nil {
		t.Fatal(err)
	}
	var ran []string
	for _, b := range md.Buildpacks {
		ran = append(ran, b.ID)
	}
	if want := []string{"test/hello", "cipack-examples/shell", "cipack-examples/cache"}; !slices.Equal(ran, want) {
		t.Fatalf("the image's build metadata lists %v, want %v", ran, want)
	}
}
