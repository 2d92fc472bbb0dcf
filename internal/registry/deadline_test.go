package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"

	"github.com/cipack/cipack/internal/exit"
)

// blackhole accepts TCP connections on 127.0.0.1 and never answers.
func blackhole(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		close(done)
		ln.Close()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestBlackholedRegistryFailsWithinTheDeadline(t *testing.T) {
	host := blackhole(t)
	c, err := New(Options{Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(host + "/app:latest")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for _, op := range []struct {
		name string
		call func() error
	}{
		{"head", func() error { _, err := c.Head(ctx, ref); return err }},
		{"push check", func() error { return c.CheckPush(ctx, ref) }},
		{"config", func() error { _, _, err := c.Config(ctx, ref); return err }},
	} {
		start := time.Now()
		err := op.call()
		took := time.Since(start)
		if exit.Code(err) != exit.RegistryUnreachable {
			t.Fatalf("%s: exit %d (%v), want %d", op.name, exit.Code(err), err, exit.RegistryUnreachable)
		}
		if !strings.Contains(err.Error(), host) {
			t.Errorf("%s: the error should name the registry %s: %v", op.name, host, err)
		}
		if took > 5*time.Second {
			t.Errorf("%s: took %s with a 500ms deadline", op.name, took)
		}
	}
}

// A body that stalls mid-stream fails after the idle deadline, while a
// slow but steady one completes.
func TestIdleBodyDeadline(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fl := w.(http.Flusher)
		for i := 0; i < 4; i++ {
			w.Write([]byte("x"))
			fl.Flush()
			if r.URL.Path == "/stall" && i == 1 {
				<-r.Context().Done()
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}))
	defer srv.Close()
	client := &http.Client{Transport: &deadlineTransport{next: http.DefaultTransport, timeout: 300 * time.Millisecond}}
	read := func(path string) error {
		resp, err := client.Get(srv.URL + path)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = readAll(resp)
		return err
	}
	if err := read("/steady"); err != nil {
		t.Fatalf("steady body: %v", err)
	}
	var te *TimeoutError
	if err := read("/stall"); !errors.As(err, &te) || te.Stage != "body" {
		t.Fatalf("stalled body: %v, want a body TimeoutError", err)
	}
}

func readAll(resp *http.Response) ([]byte, error) {
	var out []byte
	buf := make([]byte, 16)
	for {
		n, err := resp.Body.Read(buf)
		out = append(out, buf[:n]...)
		if err != nil {
			if err.Error() == "EOF" {
				return out, nil
			}
			return out, err
		}
	}
}

// The push check retries a transient 503 like every other registry call:
// one blip does not fail a build.
func TestPushCheckRetriesTransientErrors(t *testing.T) {
	reg := ggcrregistry.New()
	var failed atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") && failed.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		reg.ServeHTTP(w, r)
	}))
	defer srv.Close()
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(strings.TrimPrefix(srv.URL, "http://") + "/app:latest")
	if err := c.CheckPush(context.Background(), ref); err != nil {
		t.Fatalf("one 503 failed the push check: %v", err)
	}
	if failed.Load() < 2 {
		t.Fatalf("the 503 was not retried (%d POSTs)", failed.Load())
	}
}
