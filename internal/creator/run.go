package creator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cipack/cipack/internal/cnb"
	"github.com/cipack/cipack/internal/exit"
)

// PhaseTiming is how long one lifecycle phase took.
type PhaseTiming struct {
	Phase    string        `json:"phase"`
	Duration time.Duration `json:"duration_ns"`
}

// Observer hears when a phase starts and ends, so that a CI vendor can open
// and close a log group around it. Both calls happen on the log stream's
// goroutine, before and after the phase's lines are written.
type Observer interface {
	PhaseStart(phase string)
	PhaseEnd(phase string, d time.Duration)
}

// Runner runs one planned invocation, writing its stdout and stderr to log
// (the lifecycle logs to stdout; cipack keeps stdout for results).
type Runner struct {
	Log      io.Writer
	Observer Observer
	// Environ is the base environment of the child; nil means none but
	// the invocation's own env and PATH.
	Environ []string
	// Wrap, when set, turns a planned invocation into the command that
	// runs it (pull mode runs it in a sandbox). Its done is called after
	// the command exited: an error from it means the sandbox failed, not
	// the phase.
	Wrap func(Invocation, []string) (cmd *exec.Cmd, done func(exitCode int) error, err error)
	// Before, when set, is asked before each phase of RunPhases: an error
	// stops the build there (e.g. before export, so nothing is pushed).
	Before func(Invocation) error
}

// RunNegotiated runs plan(api) for each candidate API, newest first, until
// the lifecycle accepts one: a lifecycle that does not speak an API exits
// 11 before its first phase, so trying is as cheap as asking, and the
// common case (the newest API works) costs one run instead of a probe plus
// a run. Output is held until the first phase starts, so a rejected
// attempt leaves nothing in the log.
func (r *Runner) RunNegotiated(ctx context.Context, candidates []string, plan func(api string) Invocation) (string, []PhaseTiming, error) {
	for _, api := range candidates {
		timings, rejected, err := r.run(ctx, plan(api))
		if rejected {
			continue
		}
		return api, timings, err
	}
	return "", nil, exit.New(exit.Builder, "platform API",
		fmt.Errorf("the builder's lifecycle accepts none of %v", candidates),
		"use a builder with lifecycle "+cnb.MinLifecycle+" or newer, or pass --platform-api with a version it supports")
}

// codeAPIRejected is the lifecycle's exit code for an unsupported platform API.
const codeAPIRejected = 11

func (r *Runner) run(ctx context.Context, inv Invocation) (timings []PhaseTiming, rejected bool, err error) {
	pw := &phaseWriter{out: r.Log, obs: r.Observer, now: time.Now, hold: true}
	code, err := r.start(ctx, inv, pw)
	if err == nil && code == codeAPIRejected && pw.stillHolding() {
		return nil, true, nil
	}
	timings = pw.finish()
	if err == nil && ctx.Err() != nil {
		err = ctx.Err()
	}
	if err == nil {
		err = cnb.ExitError(baseName(inv.Path), code)
	}
	return timings, false, err
}

// RunPhases runs the phases one after the other, each as its own process
// (pull mode's split: the credential phases run a lifecycle cipack
// trusts, detect and build the builder's own). The separate binaries
// print no phase banners, so the runner writes them. It stops at the
// first phase that fails.
func (r *Runner) RunPhases(ctx context.Context, phases []Invocation) ([]PhaseTiming, error) {
	pw := &phaseWriter{out: r.Log, obs: r.Observer, now: time.Now}
	for _, inv := range phases {
		if r.Before != nil {
			if err := r.Before(inv); err != nil {
				return pw.finish(), err
			}
		}
		_, _ = pw.Write([]byte("===> " + strings.ToUpper(inv.Phase) + "\n"))
		code, err := r.start(ctx, inv, pw)
		if err == nil && ctx.Err() != nil {
			err = ctx.Err()
		}
		if err == nil {
			err = cnb.ExitError(baseName(inv.Path), code)
		}
		if err != nil {
			return pw.finish(), err
		}
	}
	return pw.finish(), nil
}

// start runs inv with its output to pw and returns its exit code; an
// error means it could not run (or its sandbox failed), not that it
// exited non-zero.
func (r *Runner) start(ctx context.Context, inv Invocation, pw *phaseWriter) (int, error) {
	env := append(append([]string{}, r.Environ...), inv.Env...)
	var cmd *exec.Cmd
	done := func(int) error { return nil }
	if r.Wrap != nil {
		var err error
		if cmd, done, err = r.Wrap(inv, env); err != nil {
			return 0, exit.New(exit.Sandbox, "sandbox", err, "pull mode needs root, an OCI runtime (crun or runc), mount namespaces and overlayfs")
		}
	} else {
		cmd = exec.CommandContext(ctx, inv.Path, inv.Args...)
		cmd.Env = env
		cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
		// A lifecycle started directly dies with cipack, even by SIGKILL,
		// and what it leaves running is cipack's to end (see reap.go).
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		becomeSubreaper()
	}
	cmd.WaitDelay = 10 * time.Second
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		_ = done(-1)
		return 0, startError(r.Wrap != nil, inv, cmd, err)
	}
	stop := make(chan struct{})
	if r.Wrap != nil {
		go interruptThenKill(ctx, cmd, stop)
	}
	runErr := cmd.Wait()
	close(stop)
	if r.Wrap == nil {
		if n := reapDescendants(); n > 0 {
			fmt.Fprintf(r.Log, "cipack: %d process(es) the %s phase left running were stopped\n", n, phaseName(inv))
		}
	}
	code := 0
	var ee *exec.ExitError
	if errors.As(runErr, &ee) {
		code = ee.ExitCode()
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			code = 128 + int(ws.Signal())
		}
	} else if runErr != nil {
		_ = done(-1)
		return 0, exit.New(exit.Builder, inv.Path, runErr, "the builder's lifecycle does not run here")
	}
	if err := done(code); err != nil {
		return code, exit.New(exit.Sandbox, "sandbox", fmt.Errorf("%s phase: %w: %s", phaseName(inv), err, strings.TrimPrefix(pw.lastLine(), "cipack: error: ")),
			"pull mode needs root, an OCI runtime (crun or runc), mount namespaces and overlayfs")
	}
	return code, nil
}

// startError names what could not start. Wrapped, that is cipack's own
// binary as the sandbox helper, not the builder's lifecycle: blaming the
// builder (exit 6) sent users after a builder that was never run.
func startError(wrapped bool, inv Invocation, cmd *exec.Cmd, err error) error {
	if wrapped {
		return exit.New(exit.Sandbox, "sandbox helper "+cmd.Path, fmt.Errorf("%s phase: cipack could not start itself: %w", phaseName(inv), err),
			"cipack runs its own binary as the sandbox helper: keep it where it was started from, executable, on a filesystem that allows exec")
	}
	return exit.New(exit.Builder, inv.Path, err, "the builder's lifecycle does not run here")
}

// interruptThenKill forwards a cancellation to the sandbox helper (it
// passes the interrupt to the lifecycle); after the grace period the
// helper, PID 1 of the sandbox, is killed, and every process in it.
func interruptThenKill(ctx context.Context, cmd *exec.Cmd, stop <-chan struct{}) {
	select {
	case <-ctx.Done():
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-stop:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
		}
	case <-stop:
	}
}

func phaseName(inv Invocation) string {
	if inv.Phase != "" {
		return inv.Phase
	}
	return baseName(inv.Path)
}

func baseName(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[i+1:]
	}
	return p
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;]*m`)

// phaseWriter passes lines through and notices the lifecycle's phase
// banners ("===> DETECTING") to time phases and tell the observer.
type phaseWriter struct {
	mu sync.Mutex
	// hold keeps lines in held until the first phase banner, so that an
	// attempt the lifecycle rejects can be dropped without a trace.
	hold    bool
	held    [][]byte
	out     io.Writer
	obs     Observer
	now     func() time.Time
	buf     []byte
	current string
	started time.Time
	timings []PhaseTiming
	// last is the last line written: a sandbox that failed says why there.
	last string
}

func (w *phaseWriter) lastLine() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

func (w *phaseWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.line(w.buf[:i+1])
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *phaseWriter) line(l []byte) {
	text := strings.TrimSpace(ansi.ReplaceAllString(string(l), ""))
	if text != "" {
		w.last = text
	}
	phase, banner := strings.CutPrefix(text, "===> ")
	if w.hold {
		if !banner {
			w.held = append(w.held, append([]byte(nil), l...))
			return
		}
		w.release()
	}
	if banner {
		w.end()
		w.current, w.started = strings.ToLower(phase), w.now()
		if w.obs != nil {
			w.obs.PhaseStart(w.current)
		}
	}
	_, _ = w.out.Write(l)
}

// release writes the held lines and stops holding.
func (w *phaseWriter) release() {
	w.hold = false
	for _, h := range w.held {
		_, _ = w.out.Write(h)
	}
	w.held = nil
}

func (w *phaseWriter) stillHolding() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.hold
}

func (w *phaseWriter) end() {
	if w.current == "" {
		return
	}
	d := w.now().Sub(w.started)
	w.timings = append(w.timings, PhaseTiming{Phase: w.current, Duration: d})
	if w.obs != nil {
		w.obs.PhaseEnd(w.current, d)
	}
	w.current = ""
}

func (w *phaseWriter) finish() []PhaseTiming {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.line(append(w.buf, '\n'))
		w.buf = nil
	}
	w.release()
	w.end()
	return w.timings
}
