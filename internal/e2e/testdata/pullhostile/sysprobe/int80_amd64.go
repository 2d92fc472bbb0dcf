package main

import "syscall"

// int80raw is the i386 system call entry (int 0x80): the number and up to
// three arguments, the kernel's return in eax.
func int80raw(nr, a1, a2, a3 uintptr) uintptr

func int80(nr, a1, a2, a3 uintptr) syscall.Errno {
	r := int32(uint32(int80raw(nr, a1, a2, a3)))
	if r < 0 && r > -4096 {
		return syscall.Errno(-r)
	}
	return 0
}
