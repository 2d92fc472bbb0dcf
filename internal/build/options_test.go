package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

func TestValidate(t *testing.T) {
	app := t.TempDir()
	file := filepath.Join(app, "f")
	if err := os.WriteFile(file, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	envFile := filepath.Join(app, "ok.env")
	if err := os.WriteFile(envFile, []byte("# c\n\nexport A=1\nB=x=y\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sbomLink := filepath.Join(t.TempDir(), "sbom")
	if err := os.Symlink(t.TempDir(), sbomLink); err != nil {
		t.Fatal(err)
	}
	ok := Options{Image: "registry.example/team/app:latest", AppPath: app, SourceRoot: app}
	cases := []struct {
		name   string
		mutate func(*Options)
		code   int
		msg    string
	}{
		{"valid", func(*Options) {}, 0, ""},
		{"valid with everything", func(o *Options) {
			o.Tags = []string{"v1", "registry.example/other/app:v2"}
			o.Env = []string{"A=1", "B=x=y", "EMPTY="}
			o.EnvFiles, o.PlatformAPI, o.UID, o.GID = []string{envFile}, "0.14", "1000", "1000"
			o.CacheImage, o.RunImage = "registry.example/cache", "registry.example/run:1"
		}, 0, ""},
		{"empty image", func(o *Options) { o.Image = " " }, exit.Usage, "--image: no image given"},
		{"uid past 32 bits", func(o *Options) { o.UID = "99999999999" }, exit.Usage, "--uid: \"99999999999\" is not a user or group id"},
		{"uid -1 as unsigned", func(o *Options) { o.UID = "4294967295" }, exit.Usage, "--uid"},
		{"negative gid", func(o *Options) { o.GID = "-5" }, exit.Usage, "--gid"},
		{"largest uid", func(o *Options) { o.UID = "4294967294" }, 0, ""},
		{"upper case image", func(o *Options) { o.Image = "Registry/App" }, exit.Usage, "--image: invalid image reference"},
		{"upper case repository says lower case, and how", func(o *Options) { o.Image = "ghcr.io/Owner/App:latest" }, exit.Usage, "repository names are lower case"},
		{"digest image", func(o *Options) { o.Image = "r.example/a@sha256:" + strings.Repeat("a", 64) }, exit.Usage, "digest reference"},
		{"bad tag", func(o *Options) { o.Tags = []string{"bad tag!"} }, exit.Usage, "--tag"},
		{"bad run image", func(o *Options) { o.RunImage = "UP/per" }, exit.Usage, "--run-image"},
		{"cache image and dir", func(o *Options) { o.CacheImage, o.CacheDir = "r.example/c", "/tmp/c" }, exit.Usage, "--cache-image"},
		{"missing path", func(o *Options) { o.AppPath = filepath.Join(app, "nope") }, exit.Usage, "--path"},
		{"file path", func(o *Options) { o.AppPath = file }, exit.Usage, "not a directory"},
		{"env without =", func(o *Options) { o.Env = []string{"A=1", "B"} }, exit.Usage, `--env: env entry "B" has no '='`},
		{"long env without = is redacted", func(o *Options) { o.Env = []string{"ghp_0123456789abcdef"} }, exit.Usage, `"ghp_…"`},
		{"env bad name", func(o *Options) { o.Env = []string{"1A=x"} }, exit.Usage, "invalid name"},
		{"env file missing", func(o *Options) { o.EnvFiles = []string{filepath.Join(app, "none")} }, exit.Usage, "--env-file"},
		{"api malformed", func(o *Options) { o.PlatformAPI = "0.x" }, exit.Usage, "--platform-api"},
		{"api unsupported", func(o *Options) { o.PlatformAPI = "0.8" }, exit.Usage, "does not support platform API 0.8"},
		{"uid not numeric", func(o *Options) { o.UID = "cnb" }, exit.Usage, "--uid"},
		{"log level", func(o *Options) { o.LogLevel = "loud" }, exit.Usage, "--log-level"},
		{"sbom dir is a link", func(o *Options) { o.SBOMDir = sbomLink }, exit.Usage, "--sbom-dir: " + sbomLink + " is a symbolic link"},
		{"sbom dir is a file", func(o *Options) { o.SBOMDir = file }, exit.Usage, "--sbom-dir"},
		{"sbom dir to make", func(o *Options) { o.SBOMDir = filepath.Join(app, "sbom-new") }, 0, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := ok
			c.mutate(&o)
			err := o.Validate()
			if exit.Code(err) != c.code {
				t.Fatalf("code %d (%v), want %d", exit.Code(err), err, c.code)
			}
			if err != nil && !strings.Contains(err.Error(), c.msg) {
				t.Fatalf("%q lacks %q", err, c.msg)
			}
		})
	}
	if strings.Contains((&Options{Image: "a", AppPath: app, SourceRoot: app, Env: []string{"ghp_0123456789abcdef"}}).Validate().Error(), "0123456789") {
		t.Fatal("a malformed env entry must not be echoed whole: it may be a pasted secret")
	}
}

func TestResolveTag(t *testing.T) {
	for tag, want := range map[string]string{
		"v1":                       "registry.example/team/app:v1",
		"registry.example/x/y:v2":  "registry.example/x/y:v2",
		"other.example:5000/z:abc": "other.example:5000/z:abc",
	} {
		got, err := ResolveTag("registry.example/team/app:latest", tag)
		if err != nil || got.String() != want {
			t.Errorf("%s → %v %v, want %s", tag, got, err, want)
		}
	}
}

func TestWritePlatformDirKeepsValuesVerbatim(t *testing.T) {
	dir, err := writePlatformDir(t.TempDir(), []string{"A=x=y=z", "B=", "C=multi\nline"}, os.Getuid(), os.Getgid(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for k, want := range map[string]string{"A": "x=y=z", "B": "", "C": "multi\nline"} {
		got, err := os.ReadFile(filepath.Join(dir, "env", k))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q (%v), want %q", k, got, err, want)
		}
	}
	// Values may be secrets: only the build user (here, the test's own
	// uid) may read them.
	if fi, _ := os.Stat(dir); fi.Mode().Perm() != 0o700 {
		t.Errorf("platform dir mode %v, want 0700", fi.Mode().Perm())
	}
	if fi, _ := os.Stat(filepath.Join(dir, "env", "A")); fi.Mode().Perm() != 0o600 {
		t.Errorf("env file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestMarkdownSummary(t *testing.T) {
	r := &Result{Image: "r/app", Digest: "sha256:abc", Tags: []string{"r/app:v1"}, PlatformAPI: "0.15",
		Buildpacks: []Buildpack{{"bp/a", "1.0"}}}
	md := r.Markdown()
	for _, want := range []string{"| Digest | `sha256:abc` |", "| bp/a | 1.0 |", "`r/app:v1`", "| Platform API | 0.15 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}

func TestEnvFileIsReadOnceAndFlagsWin(t *testing.T) {
	dir := t.TempDir()
	f := filepath.Join(dir, "build.env")
	if err := os.WriteFile(f, []byte("A=from-file\nB=file-only\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o := Options{Image: "r.example/app", AppPath: dir, SourceRoot: dir, EnvFiles: []string{f}, Env: []string{"A=from-flag"}}
	assertPlatformEnv(t, o, map[string]string{"A": "from-flag", "B": "file-only"})
}

// assertPlatformEnv validates o and checks the platform dir's env files
// it makes: env files first, --env over them.
func assertPlatformEnv(t *testing.T, o Options, want map[string]string) {
	t.Helper()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	platform, err := writePlatformDir(t.TempDir(), append(append([]string{}, o.fileEnv...), o.Env...), os.Getuid(), os.Getgid(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(platform)
	for k, v := range want {
		if b, _ := os.ReadFile(filepath.Join(platform, "env", k)); string(b) != v {
			t.Errorf("%s = %q, want %q", k, b, v)
		}
	}
}

// pack's habits: --env KEY takes the value from the environment, env
// files repeat (later ones win, --env over all).
func TestPackHabits(t *testing.T) {
	got, err := ExpandEnv([]string{"A=1", "NPM_TOKEN", "not a name"}, func(k string) (string, bool) {
		v, ok := map[string]string{"NPM_TOKEN": "t=0k"}[k]
		return v, ok
	})
	if err != nil || strings.Join(got, "|") != "A=1|NPM_TOKEN=t=0k|not a name" {
		t.Fatalf("ExpandEnv: %q %v", got, err)
	}
	if _, err := ExpandEnv([]string{"MISSING"}, func(string) (string, bool) { return "", false }); exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "MISSING is not set") {
		t.Fatalf("unset KEY: %v", err)
	}
	dir := t.TempDir()
	first, second := filepath.Join(dir, "a.env"), filepath.Join(dir, "b.env")
	_ = os.WriteFile(first, []byte("A=first\nB=first\n"), 0o644)
	_ = os.WriteFile(second, []byte("B=second\n"), 0o644)
	o := Options{Image: "r.example/app", AppPath: dir, SourceRoot: dir, EnvFiles: []string{first, second}}
	assertPlatformEnv(t, o, map[string]string{"A": "first", "B": "second"})
}
