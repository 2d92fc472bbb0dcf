package e2e

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// variantBuilder makes a copy of the fixture's builder whose lifecycle dir
// and order.toml can be changed without touching the shared one.
func variantBuilder(t *testing.T, lifecycleToml, orderToml string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lc := filepath.Join(dir, "lifecycle")
	if err := os.Mkdir(lc, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(filepath.Join(fx.BuilderDir, "lifecycle"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := os.Symlink(filepath.Join(fx.BuilderDir, "lifecycle", e.Name()), filepath.Join(lc, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"buildpacks", "run.toml"} {
		if err := os.Symlink(filepath.Join(fx.BuilderDir, f), filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	order, err := os.ReadFile(filepath.Join(fx.BuilderDir, "order.toml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "order.toml"), append(order, []byte(orderToml)...), 0o644); err != nil {
		t.Fatal(err)
	}
	if lifecycleToml != "" {
		if err := os.WriteFile(filepath.Join(lc, "lifecycle.toml"), []byte(lifecycleToml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// Every bad input fails before anything is pushed, with a message naming
// the input, and its own exit code; the registry holds no new tag.
func TestBadInputFailsEarlyWithNothingPushed(t *testing.T) {
	needFixture(t)
	auth, err := testenv.StartProxy(fx.Registry.Host, testenv.ProxyOptions{User: "ci", Password: "right-password"})
	if err != nil {
		t.Fatal(err)
	}
	defer auth.Close()
	deadPort, err := testenv.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	notADir := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(notADir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(t.TempDir(), "build.env")
	if err := os.WriteFile(envFile, []byte("# comment\nGOOD=1\nBROKEN LINE\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	oldLifecycle := variantBuilder(t, "[apis.platform]\nsupported = [\"0.10\", \"0.11\"]\n", "")
	withExtensions := variantBuilder(t, "", "\n[[order-extensions]]\n[[order-extensions.group]]\nid = \"ext/curl\"\nversion = \"0.0.1\"\n")
	const secret = "wrong-password-s3cr3t"
	badAuth := fmt.Sprintf(`{%q: "Basic %s"}`, auth.Host, base64.StdEncoding.EncodeToString([]byte("ci:"+secret)))

	repo := func(name string) string { return fx.Registry.Host + "/bad/" + name }
	cases := []struct {
		name    string
		repo    string // where nothing may appear
		args    []string
		env     []string
		code    int
		message string
	}{
		{"no image", "", nil, nil, exit.Usage, "--image: no image given"},
		{"invalid image", "", []string{"--image", "Not/A:Valid:Ref"}, nil, exit.Usage, "--image: invalid image reference"},
		{"app path missing", repo("nopath"), []string{"--image", repo("nopath"), "--path", "/nonexistent/app"}, nil, exit.Usage, "--path: app path"},
		{"app path not a dir", repo("notdir"), []string{"--image", repo("notdir"), "--path", notADir}, nil, exit.Usage, "is not a directory"},
		// A bare KEY takes its value from the environment (pack's habit);
		// one that is not set is an error naming it, and a non-name entry
		// is refused without being echoed.
		{"env KEY not set", repo("env"), []string{"--image", repo("env"), "--env", "JUSTAKEY"}, nil, exit.Usage, `--env: --env JUSTAKEY takes its value from the environment, and JUSTAKEY is not set`},
		{"env var KEY not set", repo("envvar"), []string{"--image", repo("envvar")}, []string{"CIPACK_ENV=A=1\nNOEQUALS"}, exit.Usage, "NOEQUALS is not set"},
		{"env entry not a name", repo("envbad"), []string{"--image", repo("envbad"), "--env", "not a name"}, nil, exit.Usage, `env entry "not a name" has no '='`},
		{"env file bad line", repo("envfile"), []string{"--image", repo("envfile"), "--env-file", envFile}, nil, exit.Usage, "build.env:3"},
		{"unknown platform API", repo("api"), []string{"--image", repo("api"), "--platform-api", "0.99"}, nil, exit.Usage, "--platform-api"},
		{"malformed platform API", repo("api2"), []string{"--image", repo("api2"), "--platform-api", "latest"}, nil, exit.Usage, "--platform-api"},
		{"builder lifecycle too old", repo("oldlc"), []string{"--image", repo("oldlc"), "--cnb-dir", oldLifecycle}, nil, exit.Builder, "none in common"},
		{"lifecycle not found", repo("nolc"), []string{"--image", repo("nolc"), "--cnb-dir", "/nonexistent/cnb"}, nil, exit.Builder, "lifecycle: no creator"},
		{"image extensions", repo("ext"), []string{"--image", repo("ext"), "--cnb-dir", withExtensions}, nil, exit.Builder, "image extensions"},
		{"run image unreadable", repo("norun"), []string{"--image", repo("norun"), "--run-image", fx.Registry.Host + "/does/not-exist:v1"}, nil, exit.ImageNotFound, "does/not-exist:v1: image not found"},
		{"cache image and dir", repo("cache"), []string{"--image", repo("cache"), "--cache-image", repo("cache-img"), "--cache-dir", "/tmp/x"}, nil, exit.Usage, "--cache-image"},
		{"registry refuses anonymous", "", []string{"--image", auth.Host + "/bad/anon"}, nil, exit.RegistryAuth, "registry refused"},
		{"registry refuses credentials", "", []string{"--image", auth.Host + "/bad/creds"}, []string{"CNB_REGISTRY_AUTH=" + badAuth}, exit.RegistryAuth, "registry refused"},
		{"registry unreachable", "", []string{"--image", fmt.Sprintf("127.0.0.1:%d/bad/down", deadPort)}, nil, exit.RegistryUnreachable, "registry unreachable"},
		{"bad output format", repo("out"), []string{"--image", repo("out"), "--output", "yaml"}, nil, exit.Usage, "--output"},
		{"unknown flag", "", []string{"--imagee", repo("flag")}, nil, exit.Usage, "unknown flag"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := cipackBuild(t, "bad", c.env, c.args...)
			if r.code != c.code {
				t.Fatalf("exit code %d, want %d\nstderr:\n%s", r.code, c.code, r.stderr)
			}
			if !strings.Contains(r.stderr, c.message) {
				t.Fatalf("stderr lacks %q:\n%s", c.message, r.stderr)
			}
			if r.stdout != "" {
				t.Fatalf("a failed build printed a result: %q", r.stdout)
			}
			if strings.Contains(r.stderr, "===> ") {
				t.Fatalf("the lifecycle started despite bad input:\n%s", r.stderr)
			}
			if strings.Contains(r.stderr+r.stdout, secret) {
				t.Fatalf("the secret leaked into the output:\n%s", r.stderr)
			}
			if c.repo != "" {
				if got := tags(t, c.repo); len(got) != 0 {
					t.Fatalf("%s holds tags %v after a failed build", c.repo, got)
				}
			}
		})
	}
	// Nothing at all reached the authenticated registry's repositories.
	for _, n := range []string{"anon", "creds"} {
		if got := tags(t, repo(n)); len(got) != 0 {
			t.Fatalf("%s holds tags %v", repo(n), got)
		}
	}
}

// A buildpack failure maps the lifecycle's exit code to cipack's and says
// what to fix; no tag is written.
func TestFailedDetectionMapsExitCode(t *testing.T) {
	needFixture(t)
	image := fx.Registry.Host + "/bad/detect"
	m := workspace(t, "detect")
	if err := os.Remove(filepath.Join(m.Workspace, "app.sh")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(m.Workspace, "README"), []byte("no app here"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := fx.CipackBuild(t.Context(), m, "--image", image)
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != exit.Detect {
		t.Fatalf("exit code %d, want %d\n%s", cmd.ProcessState.ExitCode(), exit.Detect, out)
	}
	if !strings.Contains(string(out), "no buildpack group detected this app") {
		t.Fatalf("output lacks the detect hint:\n%s", out)
	}
	if got := tags(t, image); len(got) != 0 {
		t.Fatalf("tags %v after failed detection", got)
	}
}
