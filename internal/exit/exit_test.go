package exit

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// Code finds the outermost *Error through any wrapping; anything else is
// Internal, nil is OK. Error() puts the subject first and the hint last.
func TestCodeAndMessage(t *testing.T) {
	inner := New(RegistryAuth, "registry.example/app", errors.New("401"), "check the credentials")
	for _, c := range []struct {
		name string
		err  error
		code int
		msg  string
	}{
		{"nil", nil, OK, ""},
		{"plain", errors.New("boom"), Internal, "boom"},
		{"typed", inner, RegistryAuth, "registry.example/app: 401 (check the credentials)"},
		{"wrapped", fmt.Errorf("push: %w", inner), RegistryAuth, "push: registry.example/app: 401 (check the credentials)"},
		{"outermost wins", New(Export, "--tag", inner, "rerun"), Export, "--tag: registry.example/app: 401 (check the credentials) (rerun)"},
		{"usage", Usagef("--uid", "give a number", "%q is not an id", "x"), Usage, `--uid: "x" is not an id (give a number)`},
		{"no subject", New(Build, "", errors.New("failed"), ""), Build, "failed"},
		{"canceled is not typed by itself", context.Canceled, Internal, "context canceled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := Code(c.err); got != c.code {
				t.Fatalf("Code = %d, want %d", got, c.code)
			}
			if c.err != nil && c.err.Error() != c.msg {
				t.Fatalf("Error() = %q, want %q", c.err.Error(), c.msg)
			}
		})
	}
	if !errors.Is(fmt.Errorf("x: %w", inner), inner) || errors.Unwrap(inner).Error() != "401" {
		t.Fatal("an *Error must unwrap to its cause")
	}
}

// Every code has a meaning in Table, once, and codes are never reused.
func TestTableListsEveryCodeOnce(t *testing.T) {
	seen := map[int]bool{}
	for _, r := range Table {
		if seen[r.Code] || r.Meaning == "" {
			t.Fatalf("code %d listed twice or without a meaning", r.Code)
		}
		seen[r.Code] = true
	}
	for _, c := range []int{OK, Internal, Usage, RegistryAuth, RegistryUnreachable, ImageNotFound, Builder, Detect, Build, Export, Lifecycle, SomeFailed, ChangesPending, Sandbox, Canceled} {
		if !seen[c] {
			t.Errorf("code %d is not in Table", c)
		}
	}
}
