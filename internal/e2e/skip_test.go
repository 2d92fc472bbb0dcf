package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"

	"github.com/cipack/cipack/internal/testenv"
)

// Build avoidance: with --skip-unchanged, a build of the same app,
// builder, run image and inputs runs no lifecycle and prints the image's
// digest; a new tag still lands on it; any change — the app, the env, an
// excluded-file change that the build does not see aside — builds.
func TestSkipUnchangedSkipsExactlyWhenNothingChanged(t *testing.T) {
	needFixture(t)
	for _, mode := range []string{"in-builder", "pull"} {
		t.Run(mode, func(t *testing.T) {
			image := fx.Registry.Host + "/skip-" + mode + "/app:latest"
			m := workspace(t, "skip-"+mode)
			if err := os.WriteFile(filepath.Join(m.Workspace, "project.toml"), []byte("[_]\nschema-version = \"0.2\"\n[io.buildpacks]\nexclude = [\"*.log\"]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			build := func(args ...string) run {
				args = append([]string{"--image", image, "--output", "json", "--skip-unchanged"}, args...)
				if mode == "pull" {
					cache := filepath.Join(fx.Dir, "builder-cache-skip")
					cmdArgs := append([]string{"--path", m.Workspace, "--source-root", m.Workspace, "--cnb-dir", filepath.Join(fx.Dir, "no-cnb"),
						"--builder-cache", cache, "--builder", fx.BuilderImage}, args...)
					return runCipack(t, append([]string{"build"}, cmdArgs...)...)
				}
				return cipackBuildIn(t, m, nil, args...)
			}
			first := build()
			if first.code != 0 || strings.Contains(first.stdout, `"skipped": true`) {
				t.Fatalf("first build: exit %d\n%s", first.code, first.stderr)
			}
			digest := mustJSON(t, first.stdout).Digest
			same := build("--tag", "again")
			if same.code != 0 || !strings.Contains(same.stdout, `"skipped": true`) || mustJSON(t, same.stdout).Digest != digest {
				t.Fatalf("an unchanged build ran or gave another digest: exit %d\n%s\n%s", same.code, same.stdout, same.stderr)
			}
			if strings.Contains(same.stderr, "===> DETECTING") {
				t.Fatal("the lifecycle ran for an unchanged build")
			}
			if testenv.MustHead(t, strings.TrimSuffix(image, ":latest")+":again").String() != digest {
				t.Fatal("the new tag did not land on the unchanged image")
			}
			// An excluded file is not part of what the build sees.
			if err := os.WriteFile(filepath.Join(m.Workspace, "debug.log"), []byte("noise"), 0o644); err != nil {
				t.Fatal(err)
			}
			if r := build(); r.code != 0 || !strings.Contains(r.stdout, `"skipped": true`) {
				t.Fatalf("a change to an excluded file rebuilt:\n%s", r.stderr)
			}
			for name, change := range map[string]func() []string{
				"the env": func() []string { return []string{"--env", "GREETING=changed"} },
				"the app": func() []string {
					_ = os.WriteFile(filepath.Join(m.Workspace, "new.txt"), []byte("new"), 0o644)
					return nil
				},
			} {
				r := build(change()...)
				if r.code != 0 || strings.Contains(r.stdout, `"skipped": true`) || !strings.Contains(r.stderr, "changed: ") {
					t.Fatalf("a change to %s did not build: exit %d\n%s", name, r.code, r.stderr)
				}
			}
			// Someone who can push copies the record onto an image on
			// another base: the next unchanged build builds. (First a build
			// with no extra args, so the record is this build's inputs.)
			if r := build(); r.code != 0 {
				t.Fatalf("exit %d\n%s", r.code, r.stderr)
			}
			built := testenv.MustPull(t, image)
			cf, _ := built.ConfigFile()
			other, err := testenv.RunImage(testenv.RunImageSpec{UID: fx.UID, GID: fx.GID, Version: "forged"})
			if err != nil {
				t.Fatal(err)
			}
			ocf, _ := other.ConfigFile()
			ocf.Config.Labels = map[string]string{"io.buildpacks.project.metadata": cf.Config.Labels["io.buildpacks.project.metadata"]}
			forged, err := mutate.Config(other, ocf.Config)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := testenv.Push(t.Context(), image, forged); err != nil {
				t.Fatal(err)
			}
			if r := build(); r.code != 0 || strings.Contains(r.stdout, `"skipped": true`) || !strings.Contains(r.stderr, "its layers are not on it") {
				t.Fatalf("a copied record on another base was trusted: exit %d\n%s", r.code, r.stderr)
			}
			// The tag holds the same build for another architecture (an
			// arm64 runner pushed it): this runner builds its own.
			otherArch := map[string]string{"amd64": "arm64", "arm64": "amd64"}[runtime.GOARCH]
			arm, err := testenv.ForPlatform(testenv.MustPull(t, image), v1.Platform{OS: "linux", Architecture: otherArch})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := testenv.Push(t.Context(), image, arm); err != nil {
				t.Fatal(err)
			}
			if r := build(); r.code != 0 || strings.Contains(r.stdout, `"skipped": true`) || !strings.Contains(r.stderr, "the tag holds a linux/"+otherArch+" image") {
				t.Fatalf("an image of another architecture was taken for this build: exit %d\n%s", r.code, r.stderr)
			}
		})
	}
}

// runCipack runs the cipack binary on the host with args.
func runCipack(t *testing.T, args ...string) run {
	t.Helper()
	cmd := exec.Command(fx.Cipack, args...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	return run{stdout: out.String(), stderr: errb.String(), code: cmd.ProcessState.ExitCode()}
}
