package pull

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// lockPoll is how often a build waiting for a layer another build is
// unpacking tries its lock again. flock has no timeout of its own, and a
// blocked flock cannot be interrupted by ctx: polling LOCK_NB can.
const lockPoll = 50 * time.Millisecond

// lock takes the layer's exclusive lock, waiting until ctx is done. The
// lock is an flock on locks/<hex>.lock: the kernel drops it when its
// holder dies, so a killed build never leaves a layer locked. Two opens
// of the file contend even within one process.
func (s *store) lock(ctx context.Context, hexID string) (func(), error) {
	for {
		unlock, err := s.tryLock(hexID)
		if err != nil || unlock != nil {
			return unlock, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the layer's lock (another build is unpacking it): %w", ctx.Err())
		case <-time.After(lockPoll):
		}
	}
}

// tryLock takes the layer's lock if it is free; it returns a nil unlock
// when another holder has it.
func (s *store) tryLock(hexID string) (func(), error) {
	name := locksDir + "/" + hexID + ".lock"
	// A lock file is only ever a regular file cipack made: anything else
	// (a FIFO whose open would block, a link) came with a restored cache.
	if fi, err := s.root.Lstat(name); err == nil && !fi.Mode().IsRegular() {
		if err := s.root.RemoveAll(name); err != nil {
			return nil, err
		}
	}
	f, err := s.root.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("lock %s is not a regular file", name)
	}
	sc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	var ferr error
	if err := sc.Control(func(fd uintptr) { ferr = unix.Flock(int(fd), unix.LOCK_EX|unix.LOCK_NB) }); err != nil {
		ferr = err
	}
	if errors.Is(ferr, unix.EWOULDBLOCK) {
		f.Close()
		return nil, nil
	}
	if ferr != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", name, ferr)
	}
	// Closing the file releases the flock.
	return func() { f.Close() }, nil
}
