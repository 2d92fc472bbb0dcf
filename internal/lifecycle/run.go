package lifecycle

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"
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
}

// Run executes inv and returns the phase timings and the mapped error.
func (r *Runner) Run(ctx context.Context, inv Invocation) ([]PhaseTiming, error) {
	cmd := exec.CommandContext(ctx, inv.Path, inv.Args...)
	cmd.Env = append(append([]string{}, r.Environ...), inv.Env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 10 * time.Second
	pw := &phaseWriter{out: r.Log, obs: r.Observer, now: time.Now}
	cmd.Stdout = pw
	cmd.Stderr = pw
	err := cmd.Run()
	timings := pw.finish()
	if ctx.Err() != nil {
		return timings, ctx.Err()
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return timings, ExitError(baseName(inv.Path), ee.ExitCode())
	}
	return timings, err
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
	mu      sync.Mutex
	out     io.Writer
	obs     Observer
	now     func() time.Time
	buf     []byte
	current string
	started time.Time
	timings []PhaseTiming
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
	if phase, ok := strings.CutPrefix(strings.TrimSpace(ansi.ReplaceAllString(string(l), "")), "===> "); ok {
		w.end()
		w.current, w.started = strings.ToLower(phase), w.now()
		if w.obs != nil {
			w.obs.PhaseStart(w.current)
		}
	}
	_, _ = w.out.Write(l)
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
	w.end()
	return w.timings
}

// ExecProber probes API support by running `creator -version`.
func ExecProber(b *Builder) Prober {
	return func(ctx context.Context, api string) (bool, error) {
		cmd := exec.CommandContext(ctx, b.Creator(), "-version")
		cmd.Env = []string{"CNB_PLATFORM_API=" + api}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		var ee *exec.ExitError
		switch {
		case err == nil:
			return true, nil
		case errors.As(err, &ee) && ee.ExitCode() == 11:
			return false, nil
		default:
			return false, errors.Join(err, errors.New(strings.TrimSpace(firstLine(&out))))
		}
	}
}

func firstLine(r io.Reader) string {
	s := bufio.NewScanner(r)
	if s.Scan() {
		return s.Text()
	}
	return ""
}
