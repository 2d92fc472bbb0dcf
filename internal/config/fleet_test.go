package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

func TestParseErrorsNameFileLineAndKey(t *testing.T) {
	cases := []struct {
		name, yaml, want string
	}{
		{"unknown key", "images:\n  - image: r.example/a\n    tagz: [x]\n", "fleet.yaml: line 3: unknown key tagz not found"},
		{"unknown top key", "image: r.example/a\n", "line 1: unknown key image not found"},
		{"empty", "", "the file is empty"},
		{"no images", "defaults: {builder: r.example/b}\n", "images: no images listed"},
		{"missing image", "images:\n  - tags: [r.example/a:v1]\n", "fleet.yaml:2: images[0].image: missing"},
		{"bad ref", "images:\n  - image: r.example/a\n  - image: NOT VALID\n", "fleet.yaml:3: images[1].image: \"NOT VALID\" is not an image reference"},
		{"bad tag", "images:\n  - image: r.example/a\n    tags: ['r.example/a:bad tag']\n", "images[0].tags[0]"},
		{"digest image", "images:\n  - image: r.example/a@sha256:0123456789012345678901234567890123456789012345678901234567890123\n", "images[0].image: \"r.example/a@sha256"},
		{"digest tag", "images:\n  - image: r.example/a\n    tags: ['r.example/a@sha256:0123456789012345678901234567890123456789012345678901234567890123']\n", "is a digest"},
		{"duplicate", "images:\n  - image: r.example/a\n  - image: r.example/a\n", "listed twice"},
		{"duplicate spelled twice", "images:\n  - image: r.example/a\n  - image: r.example/a:latest\n", "images[1].image: r.example/a:latest is listed twice (first at images[0].image)"},
		{"duplicate on the default registry", "images:\n  - image: ubuntu\n  - image: index.docker.io/library/ubuntu:latest\n", "listed twice"},
		{"duplicate with the host in capitals", "images:\n  - image: REG.example/app\n  - image: reg.example/app:latest\n", "images[1].image: reg.example/app:latest is listed twice (first at images[0].image)"},
		{"a tag spelled with another host case", "images:\n  - image: reg.example/app\n    tags: [Reg.Example/app:stable]\n  - image: reg.example/app:stable\n", "images[1].image: reg.example/app:stable is listed twice (first at images[0].tags[0])"},
		{"an image's tag is another image", "images:\n  - image: r.example/a\n    tags: [r.example/b:latest]\n  - image: r.example/b\n", "images[1].image: r.example/b is listed twice (first at images[0].tags[0])"},
		{"bad webhook", "images:\n  - image: r.example/a\n    trigger: {webhook: {url: 'ftp://x'}}\n", "images[0].trigger.webhook.url"},
		{"token in tokenEnv", "defaults:\n  trigger: {webhook: {url: 'https://x.example/h', tokenEnv: 'ghp_abc-def'}}\nimages:\n  - image: r.example/a\n", "defaults.trigger.webhook.tokenEnv"},
		{"wrong type", "images:\n  - image: r.example/a\n    allowRunImageRename: maybe\n", "line 3"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("fleet.yaml", []byte(c.yaml))
			if exit.Code(err) != exit.Usage {
				t.Fatalf("code %d (%v)", exit.Code(err), err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%q lacks %q", err, c.want)
			}
		})
	}
}

func TestDefaultsApply(t *testing.T) {
	f, err := Parse("f.yaml", []byte(`
defaults:
  builder: r.example/builder:latest
  runImageMirrors: [mirror.example/run]
  trigger: {webhook: {url: "https://hooks.example/build", tokenEnv: HOOK_TOKEN}}
images:
  - image: r.example/a:latest
    tags: [r.example/a:v1]
  - image: r.example/b:latest
    builder: r.example/other:1
    trigger: {webhook: {url: "http://127.0.0.1:8080/", eventType: rebuild}}
    allowRunImageRename: true
`))
	if err != nil {
		t.Fatal(err)
	}
	a, b := f.For(0), f.For(1)
	if a.Builder != "r.example/builder:latest" || a.Trigger.Webhook.TokenEnv != "HOOK_TOKEN" || a.RunImageMirrors[0] != "mirror.example/run" {
		t.Fatalf("a = %+v", a)
	}
	if b.Builder != "r.example/other:1" || b.Trigger.Webhook.EventType != "rebuild" || !b.AllowRunImageRename {
		t.Fatalf("b = %+v", b)
	}
}

func TestExampleFleetFileIsValid(t *testing.T) {
	path := filepath.Join("..", "..", "examples", "fleet.yaml")
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	f, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Images) < 2 {
		t.Fatalf("the example should show more than one image, has %d", len(f.Images))
	}
}

func TestWebhookRulesInTheFleet(t *testing.T) {
	const head = "images:\n  - image: r.example/a:latest\n    trigger:\n      webhook:\n"
	for _, c := range []struct{ body, want, absent string }{
		{"        url: http://hooks.example/x\n", "plain http", ""},
		{"        url: https://hooks.example/x\n        tokenEnv: CIPACK_REGISTRY_PASSWORD\n", "registry credentials", ""},
		{"        url: https://hooks.example/x\n        tokenEnv: CNB_REGISTRY_AUTH\n", "registry credentials", ""},
		{"        url: https://hooks.example/x\n        tokenEnv: ghp_s3cr3tT0kenValue\n", "not an environment variable name", "s3cr3t"},
		{"        url: https://u:pw0rd@hooks.example/x?token=t0k\n        tokenEnv: 'not a name'\n", "not an environment variable name", "pw0rd"},
	} {
		_, err := Parse("fleet.yaml", []byte(head+c.body))
		if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error with %q", c.body, err, c.want)
			continue
		}
		if c.absent != "" && strings.Contains(err.Error(), c.absent) {
			t.Errorf("the error echoes a secret: %v", err)
		}
	}
	if _, err := Parse("fleet.yaml", []byte(head+"        url: http://127.0.0.1:8080/x\n")); err != nil {
		t.Errorf("http to loopback is allowed: %v", err)
	}
}
