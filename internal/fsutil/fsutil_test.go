package fsutil

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestReadRegularRefusesWhatBuildCodeCouldPlant(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "report.toml")
	if err := os.WriteFile(regular, []byte("[image]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadRegular(regular, 100); err != nil || string(b) != "[image]\n" {
		t.Fatalf("regular file: %q %v", b, err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o666); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 101), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{fifo: "not a regular file", link: "symbolic link", big: "more than", dir: "not a regular file"} {
		done := make(chan error, 1)
		go func() { _, err := ReadRegular(path, 100); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: %v, want an error with %q", filepath.Base(path), err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: ReadRegular blocked", filepath.Base(path))
		}
	}
}
