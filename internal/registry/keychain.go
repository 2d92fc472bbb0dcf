package registry

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/buildpacks/lifecycle/auth"
	dockerregistry "github.com/docker/docker/registry"
	"github.com/google/go-containerregistry/pkg/authn"
)

// newEnvKeychain is the lifecycle's own keychain for CNB_REGISTRY_AUTH
// (auth.EnvKeychain: Basic, Bearer and X-Identity headers), built from the
// value the edge read. auth.NewEnvKeychain would read the process
// environment itself; this keeps env reads at the edge and normalizes keys
// exactly as it does (docker's ConvertToHostname: "https://host/v2/" and
// "host" are one key), so cipack accepts exactly what the lifecycle does.
func newEnvKeychain(v string) (*auth.EnvKeychain, error) {
	raw := map[string]string{}
	if strings.TrimSpace(v) != "" {
		if err := json.Unmarshal([]byte(v), &raw); err != nil {
			// The value is a secret: never echo it, not even in an error.
			return nil, fmt.Errorf("not a JSON object of registry to header value")
		}
	}
	headers := make(map[string]string, len(raw))
	for reg, h := range raw {
		headers[dockerregistry.ConvertToHostname(reg)] = h
	}
	return &auth.EnvKeychain{AuthHeaders: headers}, nil
}

// githubKeychain authenticates to ghcr.io with the workflow's GITHUB_TOKEN.
type githubKeychain struct{ actor, token string }

func (g githubKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if r.RegistryStr() != "ghcr.io" {
		return authn.Anonymous, nil
	}
	user := g.actor
	if user == "" {
		user = "x-access-token"
	}
	return &authn.Basic{Username: user, Password: g.token}, nil
}

// staticKeychain serves one username and password for the registries given.
type staticKeychain struct {
	registries []string
	auth       authn.AuthConfig
}

func (s staticKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	for _, reg := range s.registries {
		if reg == r.RegistryStr() {
			return authn.FromConfig(s.auth), nil
		}
	}
	return authn.Anonymous, nil
}
