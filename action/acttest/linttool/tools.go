//go:build tools

// Package linttool pins actionlint (see go.mod).
package linttool

import _ "github.com/rhysd/actionlint/cmd/actionlint"
