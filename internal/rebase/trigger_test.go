package rebase

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestWebhookRetriesBoundedAndShapesBody(t *testing.T) {
	var calls atomic.Int32
	var lastBody map[string]any
	var lastAuth string
	status := []int{503, 429, 202}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		_ = json.NewDecoder(r.Body).Decode(&lastBody)
		lastAuth = r.Header.Get("Authorization")
		w.WriteHeader(status[min(int(n)-1, len(status)-1)])
	}))
	defer srv.Close()
	w := &Webhook{Client: srv.Client(), Getenv: func(k string) string { return map[string]string{"TOK": "t0k"}[k] },
		Attempts: 3, Backoff: time.Millisecond, Timeout: time.Second}
	p := Payload{Image: "r/app:latest", Digest: "sha256:1", Verdict: "rebuild", Reason: "BUILDPACK"}

	if err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: srv.URL, TokenEnv: "TOK", EventType: "cipack-rebuild"}}, p); err != nil {
		t.Fatalf("503, 429, then 202 should succeed on the third try: %v", err)
	}
	if calls.Load() != 3 || lastAuth != "Bearer t0k" || lastBody["event_type"] != "cipack-rebuild" {
		t.Fatalf("calls %d auth %q body %v", calls.Load(), lastAuth, lastBody)
	}
	if cp, _ := lastBody["client_payload"].(map[string]any); cp["image"] != "r/app:latest" || cp["reason"] != "BUILDPACK" {
		t.Fatalf("client_payload %v", lastBody["client_payload"])
	}

	calls.Store(0)
	status = []int{500}
	if err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: srv.URL}}, p); err == nil || calls.Load() != 3 {
		t.Fatalf("a receiver that always fails: %v after %d calls, want an error after 3", err, calls.Load())
	}
	if lastBody["image"] != "r/app:latest" || lastAuth != "" {
		t.Fatalf("plain payload %v, auth %q", lastBody, lastAuth)
	}

	calls.Store(0)
	status = []int{401}
	if err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: srv.URL}}, p); err == nil || calls.Load() != 1 || !strings.Contains(err.Error(), "token") {
		t.Fatalf("a 401 is not retried and says to check the token: %v after %d calls", err, calls.Load())
	}

	err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: srv.URL, TokenEnv: "MISSING"}}, p)
	if err == nil || !strings.Contains(err.Error(), "MISSING is empty") {
		t.Fatalf("an unset token variable must be named: %v", err)
	}
}

func TestReportTableAndMarkdown(t *testing.T) {
	outcomes := []Outcome{
		{Image: "r/a:latest", Verdict: Rebase, Reason: ReasonStack, OldDigest: "sha256:aaaaaaaaaaaaaaaa", NewDigest: "sha256:bbbbbbbbbbbbbbbb", Applied: true},
		{Image: "r/b:latest", Verdict: Rebuild, Reason: ReasonBuildpack, Detail: "bp 1 → 2", Triggered: true},
		{Image: "r/c:latest", Verdict: Failed, Error: "registry unreachable"},
		{Image: "r/d:latest", Verdict: UpToDate},
	}
	r := NewReport(outcomes, false, time.Second)
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"IMAGE", "r/a:latest", "sha256:aaaaaaaaaaaa → sha256:bbbbbbbbbbbb", "rebuild triggered: bp 1 → 2", "registry unreachable",
		"4 images: 1 up-to-date, 1 rebase, 1 rebuild, 0 skipped, 1 error"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
	md := r.Markdown()
	if !strings.Contains(md, "| `r/a:latest` | rebase | STACK |") || !strings.Contains(md, "**registry unreachable**") {
		t.Errorf("markdown:\n%s", md)
	}
	if r.Failed() != 1 || r.Pending() != 2 || r.Moved()["r/a:latest"] != "sha256:bbbbbbbbbbbbbbbb" {
		t.Errorf("failed %d pending %d moved %v", r.Failed(), r.Pending(), r.Moved())
	}
}

// A webhook never follows a redirect: the token stays with the origin the
// fleet named, and a 3xx is a failure, not a trigger.
func TestWebhookDoesNotFollowRedirects(t *testing.T) {
	var leaked atomic.Int32
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer other.Close()
	for _, status := range []int{http.StatusFound, http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/landing?token=abc", status)
		}))
		w := NewWebhook(func(k string) string { return map[string]string{"TOK": "t0k"}[k] })
		w.Backoff = time.Millisecond
		err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: srv.URL + "/hook?token=s3cret", TokenEnv: "TOK"}}, Payload{Image: "r/app"})
		srv.Close()
		if err == nil || !strings.Contains(err.Error(), "redirect") {
			t.Fatalf("%d: %v, want a redirect error", status, err)
		}
		if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "abc") {
			t.Errorf("%d: the error shows a URL secret: %v", status, err)
		}
	}
	if leaked.Load() != 0 {
		t.Fatalf("the token reached the redirect target %d times", leaked.Load())
	}
}

func TestWebhookRefusesCredentialVarsAndHonoursRetryAfter(t *testing.T) {
	w := NewWebhook(func(string) string { return "registry-password" })
	err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: "http://127.0.0.1:1/", TokenEnv: "CIPACK_REGISTRY_PASSWORD"}}, Payload{})
	if err == nil || strings.Contains(err.Error(), "registry-password") {
		t.Fatalf("credential var: %v", err)
	}
	var calls atomic.Int32
	var first, second time.Time
	srv := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			first = time.Now()
			rw.Header().Set("Retry-After", "1")
			rw.WriteHeader(http.StatusTooManyRequests)
			return
		}
		second = time.Now()
		rw.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	w = NewWebhook(func(string) string { return "" })
	w.Backoff = time.Millisecond
	if err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: srv.URL}}, Payload{}); err != nil {
		t.Fatal(err)
	}
	if gap := second.Sub(first); gap < 900*time.Millisecond {
		t.Errorf("retried after %s, but the receiver asked for 1s", gap)
	}
}

// https → http: the redirect is refused, so the token never crosses the
// network in clear.
func TestWebhookTokenNeverDowngradesToHTTP(t *testing.T) {
	var leaked atomic.Int32
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Add(1)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer plain.Close()
	tls := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+"/hook", http.StatusTemporaryRedirect)
	}))
	defer tls.Close()
	w := NewWebhook(func(string) string { return "t0k" })
	w.Client.Transport = tls.Client().Transport // trust the test certificate, keep the redirect policy
	w.Backoff = time.Millisecond
	err := w.Trigger(context.Background(), Trigger{Webhook: &Hook{URL: tls.URL + "/hook", TokenEnv: "TOK"}}, Payload{})
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("https → http redirect: %v", err)
	}
	if leaked.Load() != 0 {
		t.Fatal("the token was sent over plain http")
	}
}

// A retry after a network error may deliver twice: every request about
// one image at one digest carries the same key (header and payload), and
// another image or digest another one.
func TestWebhookCarriesAnIdempotencyKey(t *testing.T) {
	var keys, bodyKeys []string
	first := true
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		cp, _ := body["client_payload"].(map[string]any)
		k, _ := cp["idempotencyKey"].(string)
		bodyKeys = append(bodyKeys, k)
		if first { // delivered, but the answer is lost
			first = false
			hj, _ := w.(http.Hijacker)
			conn, _, _ := hj.Hijack()
			_ = conn.Close()
			return
		}
		w.WriteHeader(204)
	}))
	defer srv.Close()
	w := &Webhook{Client: srv.Client(), Getenv: func(string) string { return "" }, Attempts: 3, Backoff: time.Millisecond, Timeout: time.Second}
	trig := Trigger{Webhook: &Hook{URL: srv.URL, EventType: "cipack-rebuild"}}
	for _, p := range []Payload{{Image: "r/app:latest", Digest: "sha256:1"}, {Image: "r/app:latest", Digest: "sha256:1"}, {Image: "r/app:latest", Digest: "sha256:2"}} {
		if err := w.Trigger(context.Background(), trig, p); err != nil {
			t.Fatal(err)
		}
	}
	if len(keys) != 4 || keys[0] == "" || keys[0] != keys[1] || keys[1] != keys[2] || keys[3] == keys[0] {
		t.Fatalf("keys %q: want one key for r/app:latest@sha256:1 (a retry and a later sweep) and another for sha256:2", keys)
	}
	for i := range keys {
		if bodyKeys[i] != keys[i] {
			t.Fatalf("payload key %q, header %q", bodyKeys[i], keys[i])
		}
	}
}

// A detail or error carrying a line break (a label's buildpack id, a
// registry's message, a merged report) stays on its row: no line of the
// table or the job summary can start with a workflow command.
func TestReportCellsStayOnTheirLine(t *testing.T) {
	r := Report{Images: []Outcome{{Image: "r/app:latest", Verdict: Rebuild, Detail: "bp 1 → 2\n::error title=forged::pwned\r\n::add-mask::x"},
		{Image: "r/b:latest", Verdict: Failed, Error: "registry said\n::stop-commands::tok"}}}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{table.String(), r.Markdown()} {
		for _, line := range strings.Split(out, "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "::") {
				t.Fatalf("a line starts a workflow command: %q\n%s", line, out)
			}
		}
		if !strings.Contains(out, "pwned") {
			t.Fatalf("the detail was dropped:\n%s", out)
		}
	}
}
