//go:build amd64

// Command sysprobe makes system calls a build has no business making and
// prints what the kernel (or the seccomp filter in front of it) said, one
// line each: "sysprobe ABI NAME: ok" or the errno's name. The e2e test
// runs it on the host first (what the kernel itself allows) and then as
// build code in pull mode's container, where each must be refused.
//
// ABIs: "64" is the native amd64 entry point, "32" the i386 one (int
// 0x80, which a 64-bit process may use), "x32" the x32 one (the syscall
// number with bit 30 set). The numbers are amd64's.
package main

import (
	"fmt"
	"syscall"
	"unsafe"
)

const (
	addrNoRandomize = 0x0040000 // a personality the default profile does not list
	x32Bit          = 0x40000000
	sysFileGetattr  = 468 // Linux 6.17: newer than the pinned profile
)

func main() {
	attr := make([]byte, 24) // struct file_attr, FILE_ATTR_SIZE_VER0
	dot := []byte(".\x00")
	io := make([]byte, 120) // struct io_uring_params
	report("64", "personality", raw(syscall.SYS_PERSONALITY, addrNoRandomize, 0, 0, 0, 0))
	report("64", "file_getattr", raw(sysFileGetattr, uintptr(atFdcwd()), uintptr(unsafe.Pointer(&dot[0])), uintptr(unsafe.Pointer(&attr[0])), uintptr(len(attr)), 0))
	report("64", "keyctl", raw(syscall.SYS_KEYCTL, 0, negOne(3), 0, 0, 0))
	report("64", "io_uring_setup", raw(425, 1, uintptr(unsafe.Pointer(&io[0])), 0, 0, 0))
	report("64", "unshare", raw(syscall.SYS_UNSHARE, syscall.CLONE_NEWUSER, 0, 0, 0, 0))
	report("64", "userfaultfd", raw(323, 0, 0, 0, 0, 0))
	report("x32", "personality", raw(x32Bit|135, addrNoRandomize, 0, 0, 0, 0))
	report("32", "getpid", int80(20, 0, 0, 0))
	report("32", "personality", int80(136, addrNoRandomize, 0, 0))
	report("32", "keyctl", int80(288, 0, negOne(3), 0))
	report("32", "unshare", int80(310, syscall.CLONE_NEWUSER, 0, 0))
}

func raw(nr, a1, a2, a3, a4, a5 uintptr) syscall.Errno {
	_, _, e := syscall.RawSyscall6(nr, a1, a2, a3, a4, a5, 0)
	return e
}

func report(abi, name string, e syscall.Errno) {
	res := "ok"
	if e != 0 {
		res = errnoName(e)
	}
	fmt.Printf("sysprobe %s %s: %s\n", abi, name, res)
}

func errnoName(e syscall.Errno) string {
	switch e {
	case syscall.EPERM:
		return "EPERM"
	case syscall.ENOSYS:
		return "ENOSYS"
	case syscall.EINVAL:
		return "EINVAL"
	case syscall.EACCES:
		return "EACCES"
	}
	return fmt.Sprintf("errno%d", int(e))
}

// negOne(n) is -n as a register value (a keyring id like
// KEY_SPEC_SESSION_KEYRING).
func negOne(n uintptr) uintptr { return ^n + 1 }

func atFdcwd() int { return -100 }
