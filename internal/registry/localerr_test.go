package registry

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"syscall"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

// A local file error that reaches Classify (a layer written to a full
// disk while it streams from the registry) is not "registry unreachable":
// a full disk is exit 13 naming the file, and another local errno is no
// network error either (syscall.Errno satisfies net.Error).
func TestClassifyLocalErrorsAreNotTheRegistry(t *testing.T) {
	full := fmt.Errorf("layer entry %q: %w", "usr/lib/big", &fs.PathError{Op: "write", Path: "/store/layers/x/usr/lib/big", Err: syscall.ENOSPC})
	err := Classify("127.0.0.1:5000/builder", "unpack layer 1 of", full)
	if exit.Code(err) != exit.Sandbox || !strings.Contains(err.Error(), "free space on the filesystem holding /store/layers/x/usr/lib/big") {
		t.Fatalf("a full disk: %v (exit %d), want exit %d naming the file", err, exit.Code(err), exit.Sandbox)
	}
	quota := Classify("img", "unpack", &fs.PathError{Op: "write", Path: "/q", Err: syscall.EDQUOT})
	if exit.Code(quota) != exit.Sandbox {
		t.Fatalf("a spent quota: %v, want exit %d", quota, exit.Sandbox)
	}
	denied := Classify("img", "unpack", &fs.PathError{Op: "open", Path: "/ro", Err: syscall.EACCES})
	if exit.Code(denied) == exit.RegistryUnreachable || strings.Contains(denied.Error(), "unreachable") {
		t.Fatalf("a local EACCES: %v, blamed on the registry", denied)
	}
	if !errors.Is(denied, syscall.EACCES) {
		t.Fatalf("the cause was lost: %v", denied)
	}
}
