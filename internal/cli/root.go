// Package cli holds cipack's cobra commands. Each command has one options
// struct that registers its flags, binds CIPACK_* variables, and validates
// before any work; the work itself lives in domain packages.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cipack/cipack/internal/ci"
	"github.com/cipack/cipack/internal/exit"
	"github.com/cipack/cipack/internal/sandbox"
)

// Version is set at link time (-ldflags -X).
var Version = "dev"

// Env is everything cipack takes from its process: the only place env vars
// and standard streams enter.
type Env struct {
	Getenv  func(string) string
	Environ []string
	Stdout  io.Writer
	Stderr  io.Writer
	// Reexec runs this cipack again as root through passwordless sudo,
	// replacing the process; it returns only on failure. Nil: never.
	Reexec func() error

	// commands is the raw stderr, for the CI's own workflow commands;
	// Stderr carries log text, defused where the CI would execute it.
	commands io.Writer
}

// Execute runs cipack with args and returns the process exit code.
func Execute(ctx context.Context, args []string, env Env) int {
	hideEnviron()
	safe := ci.SafeLog(env.Getenv, env.Stderr)
	defer safe.Flush()
	env.commands, env.Stderr = env.Stderr, safe
	root := &cobra.Command{
		Use:           "cipack",
		Short:         "Build and keep patched OCI images with Cloud Native Buildpacks, inside your CI",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
	}
	// Flag and command errors are typed here, where cobra makes them, so
	// the exit code never depends on an error's text.
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		hint := "see `" + c.CommandPath() + " --help`"
		if why := packHint(err, c.Flags()); why != "" {
			hint = why
		}
		return exit.Usagef("flags", hint, "%v", err)
	})
	root.Args = cobra.ArbitraryArgs
	root.RunE = func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return exit.Usagef("command", "see `cipack --help` for the commands", "unknown command %q", args[0])
		}
		return c.Help()
	}
	root.SetArgs(args)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.AddCommand(newBuildCmd(env), newRebaseCmd(env), newRollbackCmd(env), newManifestCmd(env), newResolveCmd(env), newCopySelfCmd(env), newExitCodesCmd(env), newSandboxCmd(env))
	err := root.ExecuteContext(ctx)
	if err == nil {
		return exit.OK
	}
	if ctx.Err() != nil && errors.Is(err, context.Canceled) {
		fmt.Fprintf(env.Stderr, "cipack: interrupted: %v\n", err)
		return exit.Canceled
	}
	err = exit.Resolve(err)
	code := exit.Code(err)
	if errors.Is(err, errSilent) {
		return code // the helper's child already said what happened
	}
	fmt.Fprintf(env.Stderr, "cipack: error: %v\n", err)
	return code
}

// bindEnv fills every flag not set on the command line from CIPACK_<FLAG>
// (dashes become underscores). Multi-value flags take one value per line,
// so values may contain commas and '='.
func bindEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		key := "CIPACK_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		v := getenv(key)
		if v == "" {
			return
		}
		values := []string{v}
		if _, multi := f.Value.(pflag.SliceValue); multi {
			values = splitLines(v)
		}
		for _, one := range values {
			if e := f.Value.Set(one); e != nil {
				err = exit.Usagef(key, "see `cipack "+fs.Name()+" --help` for the accepted values", "invalid value: %v", e)
				return
			}
		}
		f.Changed = true
	})
	return err
}

func splitLines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimRight(l, "\r"); strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out
}

func newExitCodesCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "exit-codes",
		Short: "List cipack's exit codes",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, c := range exit.Table {
				fmt.Fprintf(env.Stdout, "%3d  %s\n", c.Code, c.Meaning)
			}
			return nil
		},
	}
}

// hideEnviron marks the process not dumpable: its /proc/<pid>/environ and
// memory are then closed to other processes of the same uid. When cipack
// runs as the build user (not root), buildpacks are such processes, and
// cipack's environment holds registry passwords and tokens. The flag is
// reset on exec, so the lifecycle is not affected (see the warning in
// build for that case).
func hideEnviron() {
	_, _, _ = syscall.RawSyscall(syscall.SYS_PRCTL, syscall.PR_SET_DUMPABLE, 0, 0)
}

// noArgs and exactArgs are cobra's argument checks with typed errors.
func noArgs(cmd *cobra.Command, args []string) error { return exactArgs(0)(cmd, args) }

func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			return exit.Usagef("arguments", "see `"+cmd.CommandPath()+" --help`", "%s takes %d argument(s), got %d: %q", cmd.CommandPath(), n, len(args), args)
		}
		return nil
	}
}

// newSandboxCmd is the hidden helper of pull mode: cipack runs itself in
// new namespaces to set up the builder's filesystem (see internal/sandbox).
func newSandboxCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:    sandbox.Command,
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			code, err := sandbox.Run(cmd.InOrStdin())
			if err != nil {
				// A code no lifecycle phase uses: the parent tells a
				// sandbox that could not start from a phase that failed.
				return &exit.Error{Code: sandbox.SetupFailed, Subject: "sandbox", Err: err}
			}
			if code != 0 {
				return &exit.Error{Code: code, Subject: "", Err: errSilent}
			}
			return nil
		},
	}
}

// errSilent carries an exit code that was already explained.
var errSilent = errors.New("exit code passed through")

// SudoReexec replaces the process with `sudo -n cipack ARGS...` when
// passwordless sudo works; it returns only when it cannot.
func SudoReexec(argv []string) error {
	sudo, err := exec.LookPath("sudo")
	if err != nil {
		return fmt.Errorf("no sudo on PATH")
	}
	if err := exec.Command(sudo, "-n", "true").Run(); err != nil {
		return fmt.Errorf("sudo asks for a password")
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	return syscall.Exec(sudo, append([]string{"sudo", "-n", "--preserve-env", "--", self}, argv[1:]...), os.Environ())
}
