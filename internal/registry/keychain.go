package registry

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// envKeychain serves the credentials of CNB_REGISTRY_AUTH, the format the
// lifecycle itself reads: {"registry": "Basic <b64>" | "Bearer <token>"}.
type envKeychain map[string]string

func parseCNBRegistryAuth(v string) (envKeychain, error) {
	kc := envKeychain{}
	if strings.TrimSpace(v) == "" {
		return kc, nil
	}
	if err := json.Unmarshal([]byte(v), &kc); err != nil {
		// The value is a secret: never echo it, not even in an error.
		return nil, fmt.Errorf("not a JSON object of registry to header value")
	}
	return kc, nil
}

func (k envKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	h, ok := k[r.RegistryStr()]
	if !ok {
		return authn.Anonymous, nil
	}
	scheme, value, _ := strings.Cut(h, " ")
	switch strings.ToLower(scheme) {
	case "basic":
		return authn.FromConfig(authn.AuthConfig{Auth: value}), nil
	case "bearer":
		return authn.FromConfig(authn.AuthConfig{RegistryToken: value}), nil
	}
	return authn.Anonymous, nil
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

// headerFor renders an auth config as an Authorization header value.
func headerFor(c *authn.AuthConfig) string {
	switch {
	case c.RegistryToken != "":
		return "Bearer " + c.RegistryToken
	case c.Auth != "":
		return "Basic " + c.Auth
	case c.Username != "" || c.Password != "":
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.Username+":"+c.Password))
	}
	return ""
}

// EncodeAuth renders headers as the JSON that CNB_REGISTRY_AUTH holds.
func EncodeAuth(headers map[string]string) string {
	b, _ := json.Marshal(headers)
	return string(b)
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
