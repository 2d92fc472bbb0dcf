package pull

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"slices"
	"strconv"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"golang.org/x/sys/unix"
)

// A layer's tree is hashed against its diffID once, as it is extracted.
// Hashing it again on every build would cost what unpacking costs, so
// what is checked afterwards is a seal: a digest over the lstat facts of
// every entry of the tree (relative path, mode, owner, size, mtime and
// ctime in nanoseconds, inode, device number, link count, symlink target,
// opaque xattr), taken right after the tree was verified and renamed into
// place, and recorded in its completion marker.
//
// Why that is enough: a tree that is edited afterwards, or removed and
// restored (by a CI cache, a backup, cp -a, tar), gets new ctimes or
// inodes, and neither can be set by anyone but the kernel: a ctime is
// "now" on every change, and restoring it needs root on this machine,
// which the store's mode 0700 already demands for any change. So a seal
// mismatch means "not the tree that was verified", and the tree is
// thrown away and unpacked again from the registry blob. A forged marker
// gains nothing: the seal it carries must match facts nobody can choose.
//
// What the seal does not cover: a change made by root on this machine
// that also forges ctimes (root owns the host anyway), and data lost
// under unchanged metadata (a crash before the data reached the disk).

// markerVersion changes when the seal's recipe does: an older marker then
// fails to verify and its tree is unpacked again, never misread.
const markerVersion = 1

// marker is a layer's completion marker, layers/<hex>.json.
type marker struct {
	Version int    `json:"version"`
	DiffID  string `json:"diffID"`
	Seal    string `json:"seal"`
	Entries int    `json:"entries"`
}

// maxMarker bounds the marker read: a few hundred bytes are written.
const maxMarker = 64 << 10

// maxSealDepth bounds the directory depth walked (each level holds a
// file descriptor while its children are walked).
const maxSealDepth = 512

// errMoreEntries stops a seal walk past the entries the marker counts.
var errMoreEntries = errors.New("more entries than the marker counts")

// absent is verify's answer when the store has nothing of a layer.
const absent = "absent"

// verify checks the stored layer against its marker and seal: "" when it
// can be used as it is, otherwise why not (absent when nothing is there).
// The tree was restored with the store, so walking it is bounded (no more
// entries than the marker counts: a bigger tree cannot match its seal)
// and stops with ctx.
func (s *store) verify(ctx context.Context, diffID v1.Hash) string {
	m, err := s.readMarker(diffID.Hex)
	_, treeErr := s.root.Lstat(treeName(diffID.Hex))
	switch {
	case errors.Is(err, fs.ErrNotExist) && errors.Is(treeErr, fs.ErrNotExist):
		return absent
	case errors.Is(err, fs.ErrNotExist):
		return "its tree has no completion marker (an unpack that did not finish)"
	case err != nil:
		return fmt.Sprintf("its completion marker is unreadable (%v)", err)
	case m.Version != markerVersion || m.DiffID != diffID.String():
		return "its completion marker names another layer, or another seal recipe"
	case m.Entries < 1: // a tree has its root; 0 would unbound the walk below
		return fmt.Sprintf("its completion marker is invalid (it counts %d entries)", m.Entries)
	case treeErr != nil:
		return "its completion marker has no tree"
	}
	seal, _, err := sealTree(ctx, s.root, treeName(diffID.Hex), m.Entries)
	if errors.Is(err, errMoreEntries) {
		return "its stored tree changed since it was verified (it holds more entries than its marker counts)"
	}
	if err != nil {
		return fmt.Sprintf("its stored tree cannot be checked (%v)", err)
	}
	if seal != m.Seal {
		return "its stored tree changed since it was verified (restored from a cache, or edited)"
	}
	return ""
}

func (s *store) readMarker(hexID string) (*marker, error) {
	name := markerName(hexID)
	fi, err := s.root.Lstat(name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", name)
	}
	f, err := s.root.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if got, err := f.Stat(); err != nil || !os.SameFile(fi, got) {
		return nil, fmt.Errorf("%s changed while read", name)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxMarker+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxMarker {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, maxMarker)
	}
	var m marker
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return &m, nil
}

// complete seals the tree now in place and writes its marker, last, by a
// rename: a marker is there whole or not at all.
func (s *store) complete(diffID v1.Hash) error {
	// The tree was just extracted within the extraction's limits.
	seal, n, err := sealTree(context.Background(), s.root, treeName(diffID.Hex), 0)
	if err != nil {
		return err
	}
	data, err := json.Marshal(marker{Version: markerVersion, DiffID: diffID.String(), Seal: seal, Entries: n})
	if err != nil {
		return err
	}
	tmp := fmt.Sprintf("%s/%s%s-%d", layersDir, markerPrefix, diffID.Hex, os.Getpid())
	if err := s.root.RemoveAll(tmp); err != nil {
		return err
	}
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.root.Rename(tmp, markerName(diffID.Hex))
	}
	if err != nil {
		_ = s.root.Remove(tmp)
	}
	return err
}

// sealTree computes the seal of the directory name in root, and counts
// its entries. It walks with file descriptors (openat with O_NOFOLLOW,
// fstatat with AT_SYMLINK_NOFOLLOW): no link in the tree is followed.
// It fails once it has seen more than maxEntries entries (0: no bound)
// and when ctx is done.
func sealTree(ctx context.Context, root *os.Root, name string, maxEntries int) (string, int, error) {
	fi, err := root.Lstat(name)
	if err != nil {
		return "", 0, err
	}
	if !fi.IsDir() {
		return "", 0, fmt.Errorf("%s is not a directory", name)
	}
	d, err := root.Open(name)
	if err != nil {
		return "", 0, err
	}
	defer d.Close()
	if got, err := d.Stat(); err != nil || !os.SameFile(fi, got) {
		return "", 0, fmt.Errorf("%s changed while checked", name)
	}
	sc, err := d.SyscallConn()
	if err != nil {
		return "", 0, err
	}
	sl := &sealer{ctx: ctx, max: maxEntries, h: sha256.New(), dirent: make([]byte, 32<<10)}
	var werr error
	if err := sc.Control(func(fd uintptr) { werr = sl.root(int(fd)) }); err != nil {
		return "", 0, err
	}
	if werr != nil {
		return "", 0, fmt.Errorf("%s: %w", name, werr)
	}
	return "sha256:" + hex.EncodeToString(sl.h.Sum(nil)), sl.entries, nil
}

// sealer hashes one tree's entries in a fixed (sorted) order.
type sealer struct {
	ctx     context.Context
	max     int // entries at most (0: no bound)
	h       hash.Hash
	rec     []byte
	dirent  []byte
	link    [4096]byte
	entries int
}

func (s *sealer) root(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	s.record(".", &st, "", opaqueOf(fd))
	return s.dir(fd, "", 0)
}

func (s *sealer) dir(fd int, rel string, depth int) error {
	if depth >= maxSealDepth {
		return fmt.Errorf("%s: deeper than %d directories", rel, maxSealDepth)
	}
	names, err := s.names(fd)
	if err != nil {
		return fmt.Errorf("list %s: %w", rel, err)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := s.entry(fd, rel+n, n, depth); err != nil {
			return err
		}
	}
	return nil
}

func (s *sealer) entry(dirfd int, rel, name string, depth int) error {
	if s.max > 0 && s.entries >= s.max {
		return errMoreEntries
	}
	if s.entries%1024 == 0 {
		if err := s.ctx.Err(); err != nil {
			return err
		}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %s: %w", rel, err)
	}
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		n, err := unix.Readlinkat(dirfd, name, s.link[:])
		if err != nil {
			return fmt.Errorf("readlink %s: %w", rel, err)
		}
		s.record(rel, &st, string(s.link[:n]), "")
	case unix.S_IFDIR:
		fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		defer unix.Close(fd)
		var got unix.Stat_t
		if err := unix.Fstat(fd, &got); err != nil || got.Ino != st.Ino || got.Dev != st.Dev {
			return fmt.Errorf("%s changed while checked", rel)
		}
		s.record(rel, &st, "", opaqueOf(fd))
		return s.dir(fd, rel+"/", depth+1)
	default:
		s.record(rel, &st, "", "")
	}
	return nil
}

// names lists the directory fd (without "." and "..").
func (s *sealer) names(fd int) ([]string, error) {
	var names []string
	for {
		n, err := unix.ReadDirent(fd, s.dirent)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return names, nil
		}
		_, _, names = unix.ParseDirent(s.dirent[:n], -1, names)
	}
}

// record hashes one entry: its path, then its facts, each field ended by
// a byte no path or number holds, so no two trees hash alike by shifting
// text between fields.
func (s *sealer) record(rel string, st *unix.Stat_t, link, opaque string) {
	s.entries++
	b := append(s.rec[:0], rel...)
	b = append(b, 0)
	for _, v := range []int64{int64(st.Mode), int64(st.Uid), int64(st.Gid), st.Size,
		st.Mtim.Nano(), st.Ctim.Nano(), int64(st.Ino), int64(st.Rdev), int64(st.Nlink)} {
		b = strconv.AppendInt(b, v, 10)
		b = append(b, ' ')
	}
	b = append(b, 0)
	b = append(b, link...)
	b = append(b, 0)
	b = append(b, opaque...)
	b = append(b, '\n')
	s.rec = b
	s.h.Write(b)
}

// opaqueOf reads the overlay opaque xattr of the directory fd ("" when it
// has none, or it cannot be read: the seal then records that).
func opaqueOf(fd int) string {
	buf := make([]byte, 16)
	n, err := unix.Fgetxattr(fd, "trusted.overlay.opaque", buf)
	if err != nil {
		return ""
	}
	return string(buf[:n])
}
