// Package creator runs the Cloud Native Buildpacks lifecycle's creator —
// or, in pull mode, its phases one by one — for a build: it finds the
// binaries (the builder's under /cnb/lifecycle, or the trusted ones cipack
// pins), picks the platform API to run them at, plans the argv and
// environment of each run, streams and times the logs per phase, maps
// exit codes to errors that say what to fix (through package cnb), and
// reads report.toml.
//
// It is named for what it runs, not after the upstream module
// (github.com/buildpacks/lifecycle), whose packages it imports.
//
// Planning is pure (Plan* functions, table-tested); running goes through
// the small Runner seam so tests and the benchmark drive the same code.
package creator
