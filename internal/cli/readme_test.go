package cli

import (
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cipack/cipack/internal/testenv"
)

// The README's flag tables list exactly the commands' flags.
func TestREADMEFlagTablesMatchCommands(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		heading string
		cmd     *cobra.Command
	}{
		{"## `cipack build`", newBuildCmd(Env{})},
		{"## `cipack rebase` — the scheduled companion", newRebaseCmd(Env{})},
		{"## `cipack manifest` — one index from per-arch builds", newManifestCmd(Env{})},
	} {
		section, ok := testenv.MarkdownSection(string(readme), c.heading)
		if !ok {
			t.Fatalf("README has no %q", c.heading)
		}
		got := testenv.TableNames(section, "| Flag |")
		var want []string
		c.cmd.Flags().VisitAll(func(f *pflag.Flag) { want = append(want, "--"+f.Name) })
		for i, g := range got {
			// "--uid` / `--gid" rows document two flags.
			if g == "--uid" {
				got = append(got, "--gid")
			}
			if g == "IMAGE..." {
				got[i] = "--image"
			}
			if g == "SOURCE..." {
				got[i] = "--source"
			}
		}
		sort.Strings(got)
		sort.Strings(want)
		if !slices.Equal(got, want) {
			t.Errorf("README table under %s lists %v; the command has %v", strings.TrimPrefix(c.heading, "## "), got, want)
		}
	}
}

// Every test the README's security table names exists: a promise points
// at the test that holds it.
func TestREADMESecurityTableNamesRealTests(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	section, ok := testenv.MarkdownSection(string(readme), "## Security and reliability")
	if !ok {
		t.Fatal("README has no security section")
	}
	defined := map[string]bool{}
	err = filepath.WalkDir(filepath.Join("..", ".."), func(p string, d os.DirEntry, err error) error {
		if err != nil || !strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n") {
			if name, ok := strings.CutPrefix(l, "func Test"); ok {
				defined["Test"+name[:strings.IndexAny(name, "(")]] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	named := 0
	for _, f := range strings.Split(section, "`") {
		if strings.HasPrefix(f, "Test") && !strings.ContainsAny(f, " /") {
			named++
			if !defined[f] {
				t.Errorf("the security table names %s, which no test defines", f)
			}
		}
	}
	if named < 20 {
		t.Fatalf("found %d test names in the security table: the table moved?", named)
	}
}
