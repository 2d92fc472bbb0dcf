package acttest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/cipack/cipack/internal/testenv"
)

// startPodman serves the Docker API from podman (Debian's, with runc) on a
// private socket, with its own storage and a registries.conf that marks
// the loopback registry insecure. It returns DOCKER_HOST.
func startPodman(t *testing.T, registryHost string) string {
	t.Helper()
	if _, err := exec.LookPath("podman"); err != nil {
		t.Fatal("podman is not installed: run `make setup` (it installs podman and runc)")
	}
	dir, err := os.MkdirTemp(fx.Dir, "podman-")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"containers.conf": "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n[engine]\nruntime = \"runc\"\nexit_command_delay = 10\n",
		"registries.conf": fmt.Sprintf("unqualified-search-registries = []\n[[registry]]\nlocation = %q\ninsecure = true\n", registryHost),
		"storage.conf":    fmt.Sprintf("[storage]\ndriver = \"overlay\"\nrunroot = %q\ngraphroot = %q\n", filepath.Join(dir, "run"), filepath.Join(dir, "root")),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(dir, "podman.sock")
	env := append(os.Environ(),
		"CONTAINERS_CONF="+filepath.Join(dir, "containers.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(dir, "registries.conf"),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(dir, "storage.conf"))
	cmd := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	cmd.Env = env
	log, _ := os.Create(filepath.Join(dir, "service.log"))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		// Containers and their mounts go with the private storage.
		c := exec.Command("podman", "system", "reset", "--force")
		c.Env = env
		_ = c.Run()
	})
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			return "unix://" + sock
		}
	}
	t.Fatalf("podman service did not start")
	return ""
}

// builderWithCipack is the test builder image with cipack baked in at
// /usr/local/bin: in a container job the action finds it on PATH.
func builderWithCipack(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(fx.Cipack)
	if err != nil {
		t.Fatal(err)
	}
	layer, err := testenv.LayerFromFiles([]testenv.TarFile{
		{Name: "usr/", Dir: true, Mode: 0o755}, {Name: "usr/local/", Dir: true, Mode: 0o755},
		{Name: "usr/local/bin/", Dir: true, Mode: 0o755}, {Name: "usr/local/bin/cipack", Mode: 0o755, Body: b},
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := name.ParseReference(fx.BuilderImage)
	base, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(base, layer)
	if err != nil {
		t.Fatal(err)
	}
	ref := fx.Registry.Host + "/cipack-test/builder-with-cipack:latest"
	if _, err := testenv.Push(context.Background(), ref, img); err != nil {
		t.Fatal(err)
	}
	return ref
}

// The build example's container: job, for real: act asks podman for the
// job container (the builder image from the loopback registry), checks the
// repository out into it, and the composite action runs inside.
func TestBuildExampleInContainerJob(t *testing.T) {
	needFixture(t)
	dockerHost := startPodman(t, fx.Registry.Host)
	builder := builderWithCipack(t)
	image := fx.Registry.Host + "/gha/container-app:latest"
	r := newRepo(t, map[string]string{".github/workflows/build.yml": example(t, "build-in-builder.yml", false)})
	rootDir, _ := testenv.ModuleRoot()
	cmd := exec.Command(act, "push",
		"-W", filepath.Join(".github", "workflows", "build.yml"),
		"-P", "ubuntu-latest=-self-hosted",
		"--no-cache-server", "--action-offline-mode", "--pull=false",
		"--local-repository", "cipack/cipack@v1="+rootDir,
		"--local-repository", "actions/cache@v5="+cacheStub(),
		"--var", "CIPACK_IMAGE="+image, "--var", "CIPACK_BUILDER="+builder,
		"-s", "GITHUB_TOKEN=ghs_not_a_real_token",
		"--action-cache-path", filepath.Join(fx.Dir, "act-cache"))
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "ACT_DISABLE_VERSION_CHECK=1", "DOCKER_HOST="+dockerHost, "HOME="+filepath.Join(fx.Dir, "home"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("act: %v\n%s", err, out)
	}
	_, digest := pushed(t, string(out))
	if testenv.MustHead(t, image).String() != digest {
		t.Fatal("the digest output is not the registry's")
	}
	if !strings.Contains(string(out), "cipack: using /usr/local/bin/cipack from PATH") {
		t.Errorf("the action should find cipack baked into the builder:\n%s", out)
	}
}
