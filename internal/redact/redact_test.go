package redact

import (
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://user:s3cret@hooks.example/x":                                       "https://user:***@hooks.example/x",
		"https://hooks.example/hook?token=abc&x=1":                                  "https://hooks.example/hook?token=***&x=***",
		"https://hooks.slack.example/services/T0001/B0002/XXXXXXXXXXXXXXXXXXXXXXXX": "https://hooks.slack.example/services/T0001/B0002/***",
		"https://api.github.com/repos/example-org/web/dispatches":                   "https://api.github.com/repos/example-org/web/dispatches",
	} {
		if got := URL(in); got != want {
			t.Errorf("URL(%q) = %q, want %q", in, got, want)
		}
	}
	parts := SecretParts("https://u:pw@h.example/a/0123456789abcdefXYZ?token=tok")
	if strings.Join(parts, ",") != "pw,tok,0123456789abcdefXYZ" {
		t.Errorf("secret parts %v", parts)
	}
}
