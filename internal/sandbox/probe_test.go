package sandbox

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// After Probe every thread of the process has the process's root and
// working directory: the probe's thread, which changed namespaces, is
// gone or never runs Go code again. (A thread that joined its mount
// namespace back had "/" for both: in a chroot cipack then ran the
// host's files, in a container relative paths meant "/".)
func TestProbeLeavesEveryThreadItsRootAndCwd(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (unshare of a mount namespace)")
	}
	busyThreads(8) // a pool of threads the probe's could hide among
	if err := Probe(""); err != nil {
		t.Fatalf("probe: %v", err)
	}
	busyThreads(8)
	root, cwd := statID(t, "/"), statID(t, ".")
	tasks, err := filepath.Glob("/proc/self/task/*")
	if err != nil || len(tasks) == 0 {
		t.Fatalf("list threads: %v", err)
	}
	for _, task := range tasks {
		for _, c := range []struct {
			link string
			want fileID
		}{{"root", root}, {"cwd", cwd}} {
			got, err := statIDOf(filepath.Join(task, c.link))
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
				continue // the thread ended meanwhile
			}
			if err != nil {
				t.Fatalf("%s/%s: %v", task, c.link, err)
			}
			if got != c.want {
				target, _ := os.Readlink(filepath.Join(task, c.link))
				t.Errorf("thread %s has another %s (%s, %v) than the process (%v)", filepath.Base(task), c.link, target, got, c.want)
			}
		}
	}
}

// busyThreads keeps n goroutines in blocking system calls at once, so
// the runtime has (or makes) that many threads.
func busyThreads(n int) {
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			_ = syscall.Nanosleep(&syscall.Timespec{Nsec: 2e6}, nil)
		}()
	}
	wg.Wait()
}

type fileID struct{ dev, ino uint64 }

func statIDOf(p string) (fileID, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return fileID{}, err
	}
	return fileID{uint64(st.Dev), st.Ino}, nil
}

func statID(t *testing.T, p string) fileID {
	t.Helper()
	id, err := statIDOf(p)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// BenchmarkProbe is the probe's cost on a warm build's fixed path (each
// iteration a fresh probe, not the kept answer).
func BenchmarkProbe(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root")
	}
	for b.Loop() {
		if err := onDoomedThread(unshareBoth); err != nil {
			b.Fatal(err)
		}
	}
}
