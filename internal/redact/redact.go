// Package redact keeps secrets out of what cipack prints and sends: which
// variables hold its own credentials, how a webhook URL is shown, what looks
// like a token pasted where a variable name belongs.
package redact

import (
	"net"
	"net/url"
	"strings"
)

// credentialVars are the variables cipack itself reads registry
// credentials from. A fleet's tokenEnv may not name one: the token is sent
// to the fleet's URL, and a fleet file must not be able to exfiltrate the
// registry password or the GitHub token cipack was given.
var credentialVars = map[string]bool{
	"CIPACK_REGISTRY_USERNAME": true, "CIPACK_REGISTRY_PASSWORD": true,
	"CIPACK_GITHUB_TOKEN": true, "CNB_REGISTRY_AUTH": true,
}

// IsCredentialVar reports whether name is one of cipack's credential
// variables (or any CNB_* variable, which the lifecycle reads).
func IsCredentialVar(name string) bool {
	return credentialVars[name] || strings.HasPrefix(name, "CNB_")
}

// IsLoopbackURL reports whether u's host is a loopback address, the only
// place cipack sends a webhook over plain http.
func IsLoopbackURL(u *url.URL) bool {
	h := u.Hostname()
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// URL renders a webhook URL for logs, reports and errors: the
// password of its userinfo, every query value and any path segment that
// looks like a secret (long, or letters mixed with digits, as in Slack's
// or Teams' hook paths) become "***".
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), "***")
		}
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k := range q {
			q[k] = []string{"***"}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	segs := strings.Split(u.Path, "/")
	for i, s := range segs {
		if looksSecret(s) {
			segs[i] = "***"
		}
	}
	u.Path, u.RawPath = strings.Join(segs, "/"), ""
	return strings.ReplaceAll(u.String(), "%2A%2A%2A", "***")
}

// LooksLikeToken reports whether a tokenEnv value is probably the token
// itself: a known token prefix, or a long mix of lower case and digits
// that no one names a variable with.
func LooksLikeToken(v string) bool {
	for _, p := range []string{"ghp_", "gho_", "ghs_", "ghu_", "ghr_", "github_pat_", "glpat-", "xox"} {
		if strings.HasPrefix(v, p) {
			return true
		}
	}
	return len(v) >= 16 && strings.ToUpper(v) != v && looksSecret(v)
}

// SecretParts lists the parts of a webhook URL that URL hides, for a
// CI's log masking.
func SecretParts(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return []string{raw}
	}
	var out []string
	if p, ok := u.User.Password(); ok && p != "" {
		out = append(out, p)
	}
	for _, vs := range u.Query() {
		for _, v := range vs {
			if v != "" {
				out = append(out, v)
			}
		}
	}
	for _, s := range strings.Split(u.Path, "/") {
		if looksSecret(s) {
			out = append(out, s)
		}
	}
	return out
}

func looksSecret(seg string) bool {
	if len(seg) >= 24 {
		return true
	}
	if len(seg) < 12 {
		return false
	}
	var letters, digits bool
	for _, r := range seg {
		switch {
		case r >= '0' && r <= '9':
			digits = true
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
			letters = true
		}
	}
	return letters && digits
}
