package creator

import (
	"os"
	"strconv"
	"strings"
	"syscall"
)

// prSetChildSubreaper is prctl's PR_SET_CHILD_SUBREAPER.
const prSetChildSubreaper = 36

// becomeSubreaper makes cipack the parent of every orphan its children
// leave: a buildpack's background process, even double-forked, stays a
// descendant that reapDescendants can find. It is how a lifecycle run
// without a PID namespace (in-builder as non-root) still leaves nothing
// running when it ends.
func becomeSubreaper() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, prSetChildSubreaper, 1, 0)
}

// reapDescendants kills every process still below cipack and reaps it.
// It runs after the lifecycle exited, before cipack reads what the build
// wrote, so no build process can still change the report or the SBOM.
// It returns how many it killed.
func reapDescendants() int {
	killed := 0
	// A process may fork while the tree is walked: walk until it is empty,
	// a bounded number of times.
	for round := 0; round < 10; round++ {
		pids := descendants(os.Getpid())
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			if syscall.Kill(pid, syscall.SIGKILL) == nil {
				killed++
			}
		}
		for _, pid := range pids {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, 0, nil)
		}
	}
	return killed
}

// descendants lists the processes below pid, read from /proc's children
// lists (every thread's).
func descendants(pid int) []int {
	var out []int
	tasks, _ := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	for _, t := range tasks {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if c, err := strconv.Atoi(f); err == nil {
				out = append(out, c)
				out = append(out, descendants(c)...)
			}
		}
	}
	return out
}
