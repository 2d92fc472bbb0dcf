package project

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

func write(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "project.toml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// Every key pack v0.40 reads, in each schema, and which keys warn.
func TestLoadEveryKey(t *testing.T) {
	inline := Buildpack{ID: "example/inline", Script: Script{API: "0.10", Inline: "echo hi", Shell: "/bin/bash"}}
	for _, tc := range []struct {
		name, body string
		want       Descriptor
	}{{
		name: "0.1",
		body: `[project]
id = "io.example.app"
name = "App"
version = "1.0.0"
authors = ["A <a@example.com>"]
documentation-url = "https://example.com/docs"
source-url = "https://example.com/src"
typo = "warned"

[[project.licenses]]
type = "MIT"

[[project.licenses]]
uri = "https://example.com/license"

[build]
exclude = ["*.log", "!keep.log"]
builder = "example/builder:1"
typo = "warned"

[[build.buildpacks]]
id = "example/a"
version = "1.2.3"

[[build.buildpacks]]
uri = "bash-script-buildpack/"

[[build.buildpacks]]
id = "example/inline"
exec-env = ["test"]
script = { api = "0.10", inline = "echo hi", shell = "/bin/bash" }

[[build.env]]
name = "A"
value = "1"

[[build.env]]
name = "B"
value = "x=y"
exec-env = ["test"]

[[build.pre.group]]
id = "example/pre"
version = "0.1.0"

[[build.post.group]]
uri = "docker://example/post"

[metadata]
foo = "bar"
[metadata.nested]
x = 1

[com.example.tool]
x = 1

[io.buildpacks]
exclude = ["a 0.2 key"]
`,
		want: Descriptor{SchemaVersion: "0.1",
			Exclude: []string{"*.log", "!keep.log"},
			Builder: "example/builder:1",
			Group: []Buildpack{{ID: "example/a", Version: "1.2.3"}, {URI: "bash-script-buildpack/"},
				{ID: inline.ID, Script: inline.Script, ExecEnv: []string{"test"}}},
			Env:         []EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "x=y", ExecEnv: []string{"test"}}},
			Pre:         []Buildpack{{ID: "example/pre", Version: "0.1.0"}},
			Post:        []Buildpack{{URI: "docker://example/post"}},
			Unsupported: []string{"build.typo", "io.buildpacks", "project.typo"}},
	}, {
		name: "0.1 declared",
		body: "[_]\nschema-version = \"0.1\"\nid = \"not read in 0.1, not warned\"\n\n[build]\ninclude = [\"src/\"]\n",
		want: Descriptor{SchemaVersion: "0.1", Include: []string{"src/"}},
	}, {
		name: "0.2",
		body: `[_]
schema-version = "0.2"
id = "io.example.app"
name = "App"
version = "1.0.0"
authors = ["A"]
documentation-url = "https://example.com/docs"
source-url = "https://example.com/src"
typo = "warned"

[[_.licenses]]
type = "MIT"

[_.metadata]
foo = "bar"
[_.metadata.nested]
x = 1

[io.buildpacks]
include = ["src/", "app.sh"]
builder = "example/builder:2"
typo = "warned"

[[io.buildpacks.group]]
id = "example/a"
version = "1.2.3"

[[io.buildpacks.group]]
uri = "../shared/bp"

[[io.buildpacks.group]]
id = "example/inline"
exec-env = ["test"]
[io.buildpacks.group.script]
api = "0.10"
inline = "echo hi"
shell = "/bin/bash"

[[io.buildpacks.pre.group]]
id = "example/pre"
version = "0.1.0"

[[io.buildpacks.post.group]]
id = "example/post"

[[io.buildpacks.build.env]]
name = "A"
value = "1"
exec-env = ["test"]

[[io.buildpacks.build.env]]
name = "B"
value = "x=y"

[io.buildpacks.cache]
format = "a table pack lacks: listed once"
size = 1

[metadata]
x = 1

[com.example.tool]
x = 1
`,
		want: Descriptor{SchemaVersion: "0.2",
			Include: []string{"src/", "app.sh"},
			Builder: "example/builder:2",
			Group:   []Buildpack{{ID: "example/a", Version: "1.2.3"}, {URI: "../shared/bp"}, inline},
			Env:     []EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "x=y"}},
			Pre:     []Buildpack{{ID: "example/pre", Version: "0.1.0"}},
			Post:    []Buildpack{{ID: "example/post"}},
			// exec-env is 0.3's: pack ignores it in 0.2, so it applies everywhere.
			Unsupported: []string{"_.typo", "io.buildpacks.build.env.exec-env", "io.buildpacks.cache", "io.buildpacks.group.exec-env", "io.buildpacks.typo"}},
	}, {
		name: "0.2 deprecated env",
		body: "[_]\nschema-version = \"0.2\"\n\n[[io.buildpacks.env.build]]\nname = \"OLD\"\nvalue = \"1\"\n",
		want: Descriptor{SchemaVersion: "0.2", Env: []EnvVar{{Name: "OLD", Value: "1"}}},
	}, {
		name: "0.2 both env spellings",
		body: "[_]\nschema-version = \"0.2\"\n\n[[io.buildpacks.build.env]]\nname = \"NEW\"\n\n[[io.buildpacks.env.build]]\nname = \"OLD\"\n",
		want: Descriptor{SchemaVersion: "0.2", Env: []EnvVar{{Name: "NEW"}}, Unsupported: []string{"io.buildpacks.env.build"}},
	}, {
		name: "0.3",
		body: `[_]
schema-version = "0.3"
id = "io.example.app"
name = "App"
version = "1.0.0"
authors = ["A"]
documentation-url = "https://example.com/docs"
source-url = "https://example.com/src"

[[_.licenses]]
uri = "https://example.com/license"

[_.metadata]
foo = "bar"

[io.buildpacks]
exclude = ["/secrets", "**/*.tmp"]
builder = "example/builder:3"

[[io.buildpacks.group]]
id = "example/a"
version = "1.2.3"
exec-env = ["production", "test"]

[[io.buildpacks.group]]
uri = "bp/"
exec-env = ["*"]

[[io.buildpacks.group]]
id = "example/inline"
script = { api = "0.10", inline = "echo hi", shell = "/bin/bash" }

[[io.buildpacks.pre.group]]
id = "example/pre"
exec-env = ["test"]

[[io.buildpacks.post.group]]
uri = "urn:cnb:registry:example/post@1.0.0"

[[io.buildpacks.build.env]]
name = "A"
value = "1"
exec-env = ["test"]

[[io.buildpacks.build.env]]
name = "B"
value = "x=y"

[io.buildpacks.build]
exclude = ["dropped by pack"]

[[io.buildpacks.env.build]]
name = "C"

[com.example.tool]
x = 1
`,
		want: Descriptor{SchemaVersion: "0.3",
			Exclude: []string{"/secrets", "**/*.tmp"},
			Builder: "example/builder:3",
			Group: []Buildpack{{ID: "example/a", Version: "1.2.3", ExecEnv: []string{"production", "test"}},
				{URI: "bp/", ExecEnv: []string{"*"}}, inline},
			Env:  []EnvVar{{Name: "A", Value: "1", ExecEnv: []string{"test"}}, {Name: "B", Value: "x=y"}},
			Pre:  []Buildpack{{ID: "example/pre", ExecEnv: []string{"test"}}},
			Post: []Buildpack{{URI: "urn:cnb:registry:example/post@1.0.0"}},
			// The deprecated env spelling is 0.2's only; the user's own
			// [com.example.tool] is not warned about (pack would).
			Unsupported: []string{"io.buildpacks.build.exclude", "io.buildpacks.env.build"}},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := write(t, tc.body)
			d, err := Load(p, false)
			if err != nil {
				t.Fatal(err)
			}
			tc.want.Path, tc.want.Dir = p, filepath.Dir(p)
			if !reflect.DeepEqual(*d, tc.want) {
				t.Fatalf("got\n%+v\nwant\n%+v", *d, tc.want)
			}
		})
	}
}

func TestLoadRefusesInvalidDescriptors(t *testing.T) {
	const v2 = "[_]\nschema-version = \"0.2\"\n"
	for _, tc := range []struct{ name, body, want string }{
		{"include and exclude", v2 + "[io.buildpacks]\ninclude = []\nexclude = [\"*.log\"]\n", "both include and exclude"},
		{"0.1 include and exclude", "[build]\ninclude = [\"a\"]\nexclude = [\"b\"]\n", "both include and exclude"},
		{"license", "[[project.licenses]]\n", "license has neither type nor uri"},
		{"no id nor uri", v2 + "[[io.buildpacks.group]]\nversion = \"1\"\n", "[[io.buildpacks.group]] entry 1 has neither id nor uri"},
		{"pre without id", "[_]\nschema-version = \"0.3\"\n[[io.buildpacks.pre.group]]\nexec-env = [\"test\"]\n", "[[io.buildpacks.pre.group]] entry 1 has neither"},
		{"post without id", "[[build.post.group]]\nversion = \"1\"\n", "[[build.post.group]] entry 1 has neither"},
		{"uri and version", "[[build.buildpacks]]\nid = \"a\"\n[[build.buildpacks]]\nuri = \"bp/\"\nversion = \"1.0.0\"\n", "[[build.buildpacks]] entry 2 has both uri and version"},
		{"inline without api", v2 + "[[io.buildpacks.group]]\nid = \"x/inline\"\nscript = { inline = \"echo\" }\n", "Missing API version for inline buildpack"},
		{"inline without id", v2 + "[[io.buildpacks.group]]\nscript = { api = \"0.10\", inline = \"echo\" }\n", "inline script but no id"},
		{"env without name", v2 + "[[io.buildpacks.build.env]]\nvalue = \"1\"\n", "[[io.buildpacks.build.env]] entry 1 has no name"},
		{"deprecated env without name", v2 + "[[io.buildpacks.env.build]]\nvalue = \"1\"\n", "[[io.buildpacks.env.build]] entry 1 has no name"},
		{"0.1 env without name", "[[build.env]]\nvalue = \"1\"\n", "[[build.env]] entry 1 has no name"},
		{"env name with a digit first", v2 + "[[io.buildpacks.build.env]]\nname = \"OK\"\n[[io.buildpacks.build.env]]\nname = \"1BAD\"\n", `[[io.buildpacks.build.env]] entry 2: name "1BAD" is not an environment variable name`},
		{"env name with '='", "[[build.env]]\nname = \"A=B\"\nvalue = \"1\"\n", `[[build.env]] entry 1: name "A=B"`},
		{"env name a path", "[_]\nschema-version = \"0.3\"\n[[io.buildpacks.build.env]]\nname = \"../x\"\n", `entry 1: name "../x"`},
		// The parser notices the unclosed table of line 4 where it ends.
		{"bad toml", v2 + "\n[io.buildpacks\nexclude = []\n", "project.toml:5: expected '.' or ']'"},
		{"wrong type", v2 + "\n[io.buildpacks]\nexclude = \"*.log\"\n", "project.toml:5: io.buildpacks.exclude: incompatible types"},
		{"schema version type", "[_]\nschema-version = 2\n", "project.toml:2"},
		{"unknown schema", "[_]\nschema-version = \"0.4\"\n", `project.toml: unknown project descriptor schema version "0.4" (known: 0.1, 0.2, 0.3)`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load(write(t, tc.body), false)
			if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want a usage error with %q, got %v", tc.want, err)
			}
		})
	}
}

func TestLoadAcceptsWhatPackAccepts(t *testing.T) {
	// The CNB samples' shape: a schema 0.1 group entry by uri alone.
	p := write(t, "[[build.buildpacks]]\nuri = \"bash-script-buildpack/\"\n")
	d, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Group) != 1 || d.Group[0].URI != "bash-script-buildpack/" || d.Dir != filepath.Dir(p) || d.SchemaVersion != "0.1" {
		t.Fatalf("%+v", d)
	}
	// pack takes the uri and ignores the script: no id or api needed.
	if _, err := Load(write(t, "[[build.buildpacks]]\nuri = \"bp/\"\nscript = { inline = \"echo\" }\n"), false); err != nil {
		t.Fatal(err)
	}
	if d, err := Load(filepath.Join(t.TempDir(), "none.toml"), false); d != nil || err != nil {
		t.Fatalf("a missing optional descriptor: %v %v", d, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.toml"), true); exit.Code(err) != exit.Usage {
		t.Fatalf("a missing --descriptor: %v", err)
	}
}

func TestExecEnv(t *testing.T) {
	d := &Descriptor{Env: []EnvVar{
		{Name: "ALL", Value: "1"},
		{Name: "PROD", Value: "2", ExecEnv: []string{"production"}},
		{Name: "TEST", Value: "3", ExecEnv: []string{"test"}},
		{Name: "STAR", Value: "4", ExecEnv: []string{"*"}},
		{Name: "BOTH", Value: "5", ExecEnv: []string{"test", "production"}},
	}}
	for execEnv, want := range map[string]string{
		"production":  "ALL=1 PROD=2 STAR=4 BOTH=5",
		"test":        "ALL=1 TEST=3 STAR=4 BOTH=5",
		"development": "ALL=1 STAR=4",
		"":            "ALL=1 PROD=2 TEST=3 STAR=4 BOTH=5", // the lifecycle filters nothing without one
	} {
		if got := strings.Join(d.BuildEnv(execEnv), " "); got != want {
			t.Errorf("BuildEnv(%q) = %s, want %s", execEnv, got, want)
		}
		for _, bp := range []Buildpack{{ID: "all"}, {ID: "star", ExecEnv: []string{"*"}}} {
			if !bp.AppliesIn(execEnv) {
				t.Errorf("%s should apply in %q", bp.ID, execEnv)
			}
		}
	}
	test := Buildpack{ExecEnv: []string{"test"}}
	if test.AppliesIn("production") || !test.AppliesIn("test") {
		t.Error("an exec-env = [\"test\"] buildpack applies in test only")
	}
	if (*Descriptor)(nil).BuildEnv("production") != nil {
		t.Error("no descriptor, no env")
	}
}

// A bad env name in project.toml is the file's fault: the error names
// the file, the table entry and its name key, never --env (the build's
// platform dir once refused it as an --env entry).
func TestEnvNameBlamesProjectToml(t *testing.T) {
	p := write(t, "[_]\nschema-version = \"0.2\"\n[[io.buildpacks.build.env]]\nname = \"MY-VAR\"\nvalue = \"1\"\n")
	_, err := Load(p, false)
	var e *exit.Error
	if !errors.As(err, &e) || e.Code != exit.Usage || e.Subject != p || !strings.Contains(err.Error(), `[[io.buildpacks.build.env]] entry 1: name "MY-VAR"`) || strings.Contains(err.Error(), "--env") {
		t.Fatalf("err = %v, want a usage error whose subject is %s", err, p)
	}
}
