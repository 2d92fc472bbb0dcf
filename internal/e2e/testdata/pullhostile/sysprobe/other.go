//go:build !amd64

// The probe's system call numbers are amd64's.
package main

import "fmt"

func main() { fmt.Println("sysprobe: amd64 only") }
