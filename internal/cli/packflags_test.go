package cli

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/testenv"
)

// packBuildFlags reads pack build's flags from pack's own source (the
// module cipack depends on, from the Go module proxy), so a pack release
// that adds one fails this test until cipack says what it does with it.
func packBuildFlags(t *testing.T) []string {
	t.Helper()
	root, err := testenv.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "mod", "download", "-json", "github.com/buildpacks/pack")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go mod download github.com/buildpacks/pack (the Go module proxy must be reachable): %v", err)
	}
	var mod struct{ Dir string }
	if err := json.Unmarshal(out, &mod); err != nil || mod.Dir == "" {
		t.Fatalf("go mod download: %s (%v)", out, err)
	}
	src, err := os.ReadFile(filepath.Join(mod.Dir, "internal", "commands", "build.go"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`Flags\(\)\.\w+\(&buildFlags\.\w+, "([a-z-]+)"`)
	var flags []string
	for _, m := range re.FindAllStringSubmatch(string(src), -1) {
		flags = append(flags, m[1])
	}
	if len(flags) < 30 {
		t.Fatalf("found only %d flags in pack's build command: %v", len(flags), flags)
	}
	return flags
}

func TestEveryPackBuildFlagIsTakenOrRefusedWithAHint(t *testing.T) {
	o := &buildOptions{}
	cmd := &cobra.Command{Use: "build"}
	o.addFlags(cmd)
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section, ok := testenv.MarkdownSection(string(readme), "## Coming from pack")
	if !ok {
		t.Fatal("README has no 'Coming from pack' section")
	}
	for _, name := range packBuildFlags(t) {
		_, refused := packOnly[name]
		taken := cmd.Flags().Lookup(name) != nil
		if taken == refused {
			t.Errorf("pack's --%s: taken %v, refused with a hint %v (want exactly one)", name, taken, refused)
		}
		if !strings.Contains(section, "`--"+name+"`") {
			t.Errorf("the README's table does not say what cipack does with pack's --%s", name)
		}
		if refused {
			code, _, stderr := execute([]string{"build", "--image", "r.example/a", "--" + name}, nil)
			if code != exit.Usage || !strings.Contains(stderr, packOnly[name]) || !strings.Contains(section, packOnly[name]) {
				t.Errorf("--%s: exit %d, %s (want exit 2 with the README's hint)", name, code, stderr)
			}
		}
	}
}
