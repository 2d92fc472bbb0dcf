// Package scratch makes cipack's temporary directories so that a run
// killed before its cleanup (SIGKILL, a cancelled CI job) leaves nothing
// for long: each name carries the pid of the cipack process that made
// it, and every later run removes the directories whose process is gone.
package scratch

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Dir makes a new directory named prefix + pid + "-" + random in base
// (the temp dir when empty), after removing the ones of prefix left
// there by dead processes. The path is absolute even when base or
// TMPDIR is not: the directories become binds and the sandbox helper's
// work dir, read by processes in other working directories (the helper
// chdirs into its work dir, runc runs in its bundle).
func Dir(base, prefix string) (string, error) {
	if base == "" {
		base = os.TempDir()
	}
	base, err := filepath.Abs(base)
	if err != nil {
		return "", fmt.Errorf("make a temporary directory: %w", err)
	}
	Sweep(base, prefix)
	d, err := os.MkdirTemp(base, prefix+strconv.Itoa(os.Getpid())+"-")
	if err != nil {
		return "", fmt.Errorf("make a temporary directory: %w", err)
	}
	return d, nil
}

// Sweep removes the directories of prefix under dir whose cipack process
// no longer runs. A process alive (or not ours to signal) keeps its own.
func Sweep(dir, prefix string) {
	matches, _ := filepath.Glob(filepath.Join(dir, prefix+"*"))
	for _, m := range matches {
		pidStr, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(m), prefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if err != nil || pid <= 0 || pid == os.Getpid() || Alive(pid) {
			continue
		}
		_ = os.RemoveAll(m)
	}
}

// Alive reports whether a process with pid exists.
func Alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
