package config

import (
	"strings"
	"testing"

	"github.com/cipack/cipack/internal/exit"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@hooks.example/x":                                       "https://user:***@hooks.example/x",
		"https://hooks.example/hook?token=abc&x=1":                                  "https://hooks.example/hook?token=***&x=***",
		"https://hooks.slack.example/services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX": "https://hooks.slack.example/services/T0001/B0002/***",
		"https://api.github.com/repos/example-org/web/dispatches":                   "https://api.github.com/repos/example-org/web/dispatches",
	} {
		if got := RedactURL(in); got != want {
			t.Errorf("RedactURL(%q) = %q, want %q", in, got, want)
		}
	}
	parts := SecretParts("https://u:pw@h.example/a/0123456789abcdefXYZ?token=tok")
	if strings.Join(parts, ",") != "pw,tok,0123456789abcdefXYZ" {
		t.Errorf("secret parts %v", parts)
	}
}

func TestWebhookRulesInTheFleet(t *testing.T) {
	const head = "images:\n  - image: r.example/a:latest\n    trigger:\n      webhook:\n"
	for _, c := range []struct{ body, want, absent string }{
		{"        url: http://hooks.example/x\n", "plain http", ""},
		{"        url: https://hooks.example/x\n        tokenEnv: CIPACK_REGISTRY_PASSWORD\n", "registry credentials", ""},
		{"        url: https://hooks.example/x\n        tokenEnv: CNB_REGISTRY_AUTH\n", "registry credentials", ""},
		{"        url: https://hooks.example/x\n        tokenEnv: ghp_s3cr3tT0kenValue\n", "not an environment variable name", "s3cr3t"},
		{"        url: https://u:pw0rd@hooks.example/x?token=t0k\n        tokenEnv: 'not a name'\n", "not an environment variable name", "pw0rd"},
	} {
		_, err := Parse("fleet.yaml", []byte(head+c.body))
		if exit.Code(err) != exit.Usage || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want a usage error with %q", c.body, err, c.want)
			continue
		}
		if c.absent != "" && strings.Contains(err.Error(), c.absent) {
			t.Errorf("the error echoes a secret: %v", err)
		}
	}
	if _, err := Parse("fleet.yaml", []byte(head+"        url: http://127.0.0.1:8080/x\n")); err != nil {
		t.Errorf("http to loopback is allowed: %v", err)
	}
}
