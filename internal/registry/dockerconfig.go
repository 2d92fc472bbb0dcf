package registry

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/docker/cli/cli/config"

	"github.com/cipack/cipack/internal/exit"
)

// checkDockerConfig reads the docker config in dir up front, as
// go-containerregistry's DefaultKeychain will on the first request, so
// that a damaged file is a usage error naming the file and the registry
// entry — not an unexplained failure mid-build. Secrets are never echoed.
func checkDockerConfig(dir string) error {
	path := filepath.Join(dir, config.ConfigFileName)
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	hint := "fix or remove it; `docker login REGISTRY` writes a good entry"
	if err != nil {
		return exit.New(exit.Usage, path, err, hint)
	}
	var doc struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		return exit.New(exit.Usage, path, errors.New("not valid JSON (truncated or edited by hand?)"), hint)
	}
	regs := make([]string, 0, len(doc.Auths))
	for r := range doc.Auths {
		regs = append(regs, r)
	}
	sort.Strings(regs)
	for _, r := range regs {
		a := doc.Auths[r].Auth
		if a == "" {
			continue
		}
		dec, err := base64.StdEncoding.DecodeString(a)
		if err != nil || !strings.Contains(string(dec), ":") {
			return exit.New(exit.Usage, path, fmt.Errorf("auths[%q].auth is not base64 of USER:PASSWORD", r), hint)
		}
	}
	// And the docker CLI's own loader, which DefaultKeychain uses.
	if _, err := config.Load(dir); err != nil {
		return exit.New(exit.Usage, path, errors.New("the docker CLI's loader refuses it"), hint)
	}
	return nil
}
