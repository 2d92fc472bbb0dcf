// Command suidprobe prints the real and effective user ids it runs with.
// TestHostileBuilder installs it setuid root in a builder image: busybox
// drops a setuid bit by itself, this program does not, so it shows what
// the container's nosuid and no_new_privs make of the bit.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("uid=%d euid=%d\n", os.Getuid(), os.Geteuid())
}
