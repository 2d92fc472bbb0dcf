// Package acttest tests cipack's GitHub Actions (action.yml and
// action/rebase/action.yml) and the example workflows in examples/github:
// static checks of the action files against GitHub's rules (stricter than
// act's), and runs of the example workflows with nektos/act v0.2.89 against
// the real lifecycle and a registry on 127.0.0.1. A separate module keeps
// act's dependencies out of cipack's go.mod.
package acttest
