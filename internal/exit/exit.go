// Package exit defines cipack's exit codes and the one error type that
// carries them from deep inside a command up to main.
//
// Every failure a user can act on is an *Error: it names the input, image,
// file or phase at fault and says what to do. main turns it into a process
// exit code with Code; anything else exits with Internal.
package exit

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Exit codes. They are part of cipack's public contract (see README):
// scripts and CI systems branch on them, so never renumber one.
const (
	OK                  = 0
	Internal            = 1  // a bug or an unexpected failure
	Usage               = 2  // a flag, env var, path or file given to cipack is invalid
	RegistryAuth        = 3  // a registry refused the credentials (401/403)
	RegistryUnreachable = 4  // a registry could not be reached (DNS, TCP, TLS, timeout)
	ImageNotFound       = 5  // an image that must exist (run image, builder) does not
	Builder             = 6  // the builder cannot serve: no lifecycle, no common platform API, extensions
	Detect              = 7  // no buildpack group passed detection
	Build               = 8  // a buildpack failed during build
	Export              = 9  // the lifecycle could not export the image
	Lifecycle           = 10 // another lifecycle phase failed (analyze, restore, API mismatch)
	SomeFailed          = 11 // cipack rebase: at least one image failed; the others were handled
	ChangesPending      = 12 // cipack rebase --dry-run --exit-code: some image needs a rebase or rebuild
	Sandbox             = 13 // pull mode's container boundary or layer store failed: no runtime, overlay refused, a layer failed verification, a hostile entry; a full disk
	Canceled            = 130
)

// Error is a failure with an exit code and a hint for the user.
type Error struct {
	Code int
	// What is at fault: an input name ("--image", "CIPACK_ENV"), an image
	// reference or a phase. Printed first so the user sees where to look.
	Subject string
	// Hint says what to do about it.
	Hint string
	Err  error
}

func (e *Error) Error() string {
	msg := e.Subject
	if e.Err != nil {
		if msg != "" {
			msg += ": "
		}
		msg += e.Err.Error()
	}
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error with code, subject and hint wrapping err.
func New(code int, subject string, err error, hint string) *Error {
	return &Error{Code: code, Subject: subject, Err: err, Hint: hint}
}

// Usagef reports invalid user input: subject names the input, hint what to do.
func Usagef(subject, hint, format string, args ...any) *Error {
	return &Error{Code: Usage, Subject: subject, Err: fmt.Errorf(format, args...), Hint: hint}
}

// Code returns the exit code that err asks for: OK for nil, the code of the
// outermost *Error in the chain; a full disk or spent quota (ENOSPC,
// EDQUOT) that no *Error names is Sandbox, whichever write hit it (a
// scratch dir, the platform dir, a cache's layout file): the disk is at
// fault, not cipack; Internal otherwise.
func Code(err error) int {
	if err == nil {
		return OK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if IsNoSpace(err) {
		return Sandbox
	}
	return Internal
}

// Typed reports whether err carries an *Error (an exit code and a hint).
func Typed(err error) bool {
	var e *Error
	return errors.As(err, &e)
}

// Resolve is err as the CLI reports it: an untyped full disk becomes
// NoSpace, naming the path of its *fs.PathError, so that its message
// says where to free space as its exit code (Sandbox) says what failed.
// Anything else is returned as it is.
func Resolve(err error) error {
	if err == nil || Typed(err) {
		return err
	}
	if ns := NoSpace("", err); ns != nil {
		return ns
	}
	return err
}

// Table lists every code with its meaning, for docs and `cipack exit-codes`.
var Table = []struct {
	Code    int
	Meaning string
}{
	{OK, "success"},
	{Internal, "unexpected internal error"},
	{Usage, "invalid input: a flag, CIPACK_* variable, path or file"},
	{RegistryAuth, "a registry refused the credentials (HTTP 401/403)"},
	{RegistryUnreachable, "a registry could not be reached"},
	{ImageNotFound, "a required image (run image, builder) was not found"},
	{Builder, "the builder cannot serve this build (no lifecycle, no common platform API, image extensions)"},
	{Detect, "no buildpack group passed detection"},
	{Build, "a buildpack failed during build"},
	{Export, "exporting the image failed"},
	{Lifecycle, "another lifecycle phase failed (analyze, restore, API mismatch)"},
	{SomeFailed, "rebase: some images failed (the others were handled)"},
	{ChangesPending, "rebase --dry-run --exit-code: some images need a rebase or rebuild"},
	{Sandbox, "pull mode's sandbox or layer store failed (no OCI runtime, overlay refused, a layer failed verification, a hostile builder entry), or a disk is full"},
	{Canceled, "interrupted (SIGINT/SIGTERM)"},
}

// NoSpace names a write that failed because the filesystem holding path
// is full (ENOSPC) or the user's quota there is spent (EDQUOT): exit
// Sandbox, naming the path, rather than blaming the registry or input
// whose bytes were being written. It returns nil for any other err. An
// empty path is taken from the error's own *fs.PathError.
func NoSpace(path string, err error) error {
	if !IsNoSpace(err) {
		return nil
	}
	var pe *fs.PathError
	var le *os.LinkError
	switch {
	case path != "":
	case errors.As(err, &pe):
		path = pe.Path
	case errors.As(err, &le):
		path = le.New
	}
	where := "the filesystem holding " + path
	if path == "" {
		where = "the filesystems cipack writes to"
	}
	return New(Sandbox, path, fmt.Errorf("disk full: %w", err),
		"free space on "+where+", or point cipack at a larger one: TMPDIR, --builder-cache, --builder-blobs")
}

// IsNoSpace reports whether err is a full disk or a spent quota.
func IsNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
