package registry

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

// A damaged docker config is a usage error (exit 2) naming the file and
// the registry entry, before any request; its secrets are never printed.
func TestDockerConfigIsCheckedUpFront(t *testing.T) {
	good := base64.StdEncoding.EncodeToString([]byte("user:s3cret-pass"))
	for _, c := range []struct {
		name, body string
		want       []string
	}{
		{"good", `{"auths":{"r.example":{"auth":"` + good + `"}}}`, nil},
		{"no file", "", nil},
		{"bad base64", `{"auths":{"r.example":{"auth":"%%%s3cret"}}}`, []string{"config.json", `auths["r.example"].auth is not base64`}},
		{"no colon", `{"auths":{"r.example":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("s3cret")) + `"}}}`, []string{`auths["r.example"]`}},
		{"truncated", `{"auths":{"r.example":{"auth":"` + good[:6], []string{"config.json", "not valid JSON"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			if c.body != "" {
				if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(c.body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			_, err := New(Options{DockerConfigDir: dir})
			if c.want == nil {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if exit.Code(err) != exit.Usage {
				t.Fatalf("exit %d (%v), want %d", exit.Code(err), err, exit.Usage)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), good[:6]) {
				t.Fatalf("the error shows the secret: %v", err)
			}
		})
	}
}
