//go:build tools

// Package kotool pins ko (see go.mod).
package kotool

import _ "github.com/google/ko"
