package ci

import (
	"bytes"
	"io"
	"sync"
)

// LogWriter is where cipack's logs go: registry, webhook and image text
// (error messages, buildpack output) passes through it.
type LogWriter interface {
	io.Writer
	// Flush writes out a last line that has no newline yet.
	Flush()
}

// SafeLog returns the writer for log text. On GitHub Actions the runner
// executes any line that starts with "::" (or the legacy "##[") as a
// workflow command, so text a registry, a webhook or an image sent could
// otherwise set outputs or masks, or forge annotations. Such lines are
// defused by putting a zero-width space between the colons: the line reads
// the same and is not a command. Elsewhere the text passes unchanged.
func SafeLog(getenv Getenv, w io.Writer) LogWriter {
	if getenv("GITHUB_ACTIONS") != "true" {
		return passthrough{w}
	}
	return &escaper{out: w}
}

type passthrough struct{ io.Writer }

func (passthrough) Flush() {}

// maxHeld bounds a line held while waiting for its newline.
const maxHeld = 64 * 1024

type escaper struct {
	mu  sync.Mutex
	out io.Writer
	buf []byte
}

func (e *escaper) Write(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.buf = append(e.buf, p...)
	for {
		i := bytes.IndexByte(e.buf, '\n')
		if i < 0 {
			break
		}
		if _, err := e.out.Write(Defuse(e.buf[:i+1])); err != nil {
			return 0, err
		}
		e.buf = e.buf[i+1:]
	}
	if len(e.buf) > maxHeld {
		e.flushLocked()
	}
	return len(p), nil
}

func (e *escaper) Flush() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.flushLocked()
}

func (e *escaper) flushLocked() {
	if len(e.buf) > 0 {
		_, _ = e.out.Write(Defuse(e.buf))
		e.buf = nil
	}
}

// Defuse neutralizes a line that the GitHub runner would take as a
// workflow command. Carriage returns also start a line for the runner.
func Defuse(line []byte) []byte {
	if !bytes.Contains(line, []byte("::")) && !bytes.Contains(line, []byte("##[")) {
		return line
	}
	var out []byte
	for i, part := range bytes.Split(line, []byte("\r")) {
		if i > 0 {
			out = append(out, '\r')
		}
		trimmed := bytes.TrimLeft(part, " \t")
		lead := part[:len(part)-len(trimmed)]
		switch {
		case bytes.HasPrefix(trimmed, []byte("::")):
			out = append(append(append(out, lead...), ":\u200b:"...), trimmed[2:]...)
		case bytes.HasPrefix(trimmed, []byte("##[")):
			out = append(append(append(out, lead...), "#\u200b#["...), trimmed[3:]...)
		default:
			out = append(out, part...)
		}
	}
	return out
}
