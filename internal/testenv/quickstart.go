package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// QuickStart returns the code block of docs/quickstart.md marked
// `<!-- quickstart-test: NAME -->`: the tests run what the docs show, so
// a quick start cannot drift from a working build.
func QuickStart(name string) (string, error) {
	root, err := ModuleRoot()
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "quickstart.md"))
	if err != nil {
		return "", err
	}
	marker := "<!-- quickstart-test: " + name + " -->\n"
	_, rest, ok := strings.Cut(string(b), marker)
	if !ok {
		return "", fmt.Errorf("docs/quickstart.md has no %q", strings.TrimSpace(marker))
	}
	fence, rest, ok := strings.Cut(rest, "\n")
	if !ok || !strings.HasPrefix(fence, "```") {
		return "", fmt.Errorf("docs/quickstart.md: %q is not followed by a code block", strings.TrimSpace(marker))
	}
	body, _, ok := strings.Cut(rest, "\n```\n")
	if !ok {
		return "", fmt.Errorf("docs/quickstart.md: the %s block is not closed", name)
	}
	return body + "\n", nil
}
