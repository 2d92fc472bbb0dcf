package project

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cipack/cipack/internal/exit"
)

// The app's own project.toml comes from whoever wrote the app: a link out
// of the app, a FIFO or a huge file must give a usage error, not print a
// secret, hang or exhaust memory.
func TestLoadRefusesAHostileAppDescriptor(t *testing.T) {
	outside := filepath.Join(t.TempDir(), "secret.toml")
	if err := os.WriteFile(outside, []byte("[_]\nschema-version = \"0.2\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, plant := range map[string]func(p string) error{
		"link out":   func(p string) error { return os.Symlink(outside, p) },
		"dev zero":   func(p string) error { return os.Symlink("/dev/zero", p) },
		"fifo":       func(p string) error { return syscall.Mkfifo(p, 0o644) },
		"huge":       func(p string) error { return os.WriteFile(p, make([]byte, maxDescriptor+1), 0o644) },
		"directory":  func(p string) error { return os.Mkdir(p, 0o755) },
		"link above": func(p string) error { return os.Symlink("../project.toml", p) },
	} {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "project.toml")
			if err := plant(p); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Load(p, false); done <- err }()
			select {
			case err := <-done:
				if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), "project.toml") {
					t.Fatalf("want a usage error naming project.toml, got %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Load blocked")
			}
		})
	}
	// Named with --descriptor, the user's own link is followed.
	link := filepath.Join(t.TempDir(), "project.toml")
	if err := os.Symlink(outside, link); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(link, true); err != nil {
		t.Fatalf("--descriptor through the user's own link: %v", err)
	}
}
