package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// One tag, however it is spelled on the command line or also in the
// fleet file, is one target: swept and reported once.
func TestRebaseTargetsAreOneImageOnce(t *testing.T) {
	fleet := filepath.Join(t.TempDir(), "fleet.yaml")
	if err := os.WriteFile(fleet, []byte("images:\n  - image: r.example/team/a\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o := &rebaseOptions{Config: fleet, Images: []string{"r.example/team/a:latest", "r.example/team/b"}}
	got, err := o.targets([]string{"r.example/team/b:latest", "r.example/team/c:v1"})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, g := range got {
		names = append(names, g.Image)
	}
	if len(names) != 3 || names[0] != "r.example/team/a" || names[1] != "r.example/team/b" || names[2] != "r.example/team/c:v1" {
		t.Fatalf("targets %q, want a, b and c once each", names)
	}
}
