// Command cipack builds OCI images with Cloud Native Buildpacks inside CI
// jobs and keeps them patched. All logic lives in internal/; main only
// wires the process to it.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/cipack/cipack/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], cli.Env{
		Getenv:  os.Getenv,
		Environ: os.Environ(),
		Stdout:  os.Stdout,
		Stderr:  os.Stderr,
		Reexec:  func() error { return cli.SudoReexec(os.Args) },
	})
	stop()
	os.Exit(code)
}
