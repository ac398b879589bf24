package datasets

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
)

// A read-only reader of bbolt's file format that bounds-checks every
// offset it follows, so that a damaged file gives a list of problems
// instead of a fault or a panic.
//
// bbolt trusts its file: it reads pages through its mmap by the ids the
// file holds. A truncated file makes it touch pages past the end of the
// file (SIGBUS, which no recover catches); a flipped byte sends a slice
// bound or a page id astray (panics, some of them in goroutines of its
// own, so no recover catches those either). OpenBoltStore therefore walks
// the file with this reader before bbolt may touch it, checking what
// bbolt's own Tx.Check checks (page ids in range and referenced once,
// page types, key order, free pages not in use) plus the offsets Tx.Check
// takes on trust. Only a file that passes is handed to bbolt, whose
// Tx.Check then runs as a second opinion.
//
// The layout (go.etcd.io/bbolt/internal/common, file format version 2),
// in the machine's byte order:
//
//	page header (16 bytes): id u64, flags u16, count u16, overflow u32
//	meta (at 16 in pages 0 and 1): magic u32, version u32, page size u32,
//	    flags u32, root bucket (root page u64, sequence u64), freelist
//	    page u64, high-water page id u64, txid u64, checksum u64 (FNV-1a
//	    64 of the 56 bytes before it)
//	branch element (16 bytes): pos u32, key size u32, child page u64
//	leaf element (16 bytes): flags u32, pos u32, key size u32, value size u32
//	    (pos counts from the element itself; flag 1 marks a sub-bucket,
//	    whose value is a bucket header: root page u64, sequence u64, and,
//	    when the root is 0, an inline leaf page)
//	freelist page: count entries of u64 page ids; a count of 0xFFFF means
//	    the real count is the first u64.
const (
	boltPageHeader   = 16
	boltElemSize     = 16
	boltMetaSize     = 64
	boltBucketHeader = 16
	boltMagic        = 0xED0CDAED
	boltVersion      = 2
	boltBranchFlag   = 0x01
	boltLeafFlag     = 0x02
	boltMetaFlag     = 0x04
	boltFreelistFlag = 0x10
	boltBucketFlag   = 0x01
	boltNoFreelist   = ^uint64(0)
	// maxProblems caps the problems a check lists; the rest are counted.
	maxProblems = 50
	// maxTreeDepth bounds the recursion into branch pages and sub-buckets;
	// a real tree of this store is a few levels deep.
	maxTreeDepth = 64
)

// boltMeta is one of the file's two meta pages.
type boltMeta struct {
	pageSize uint32
	root     uint64
	freelist uint64
	pgid     uint64
	txid     uint64
	// err says why the page is not a valid meta (nil when it is).
	err error
}

var (
	errNotBolt       = errors.New("not a bbolt file")
	errMetaVersion   = errors.New("written by an incompatible bbolt version")
	errMetaChecksum  = errors.New("checksum mismatch")
	errMetaPageShort = errors.New("shorter than a meta page")
)

// parseMeta reads the meta at the start of page bytes b.
func parseMeta(b []byte) boltMeta {
	if len(b) < boltPageHeader+boltMetaSize {
		return boltMeta{err: errMetaPageShort}
	}
	m := b[boltPageHeader : boltPageHeader+boltMetaSize]
	ne := binary.NativeEndian
	meta := boltMeta{
		pageSize: ne.Uint32(m[8:]),
		root:     ne.Uint64(m[16:]),
		freelist: ne.Uint64(m[32:]),
		pgid:     ne.Uint64(m[40:]),
		txid:     ne.Uint64(m[48:]),
	}
	h := fnv.New64a()
	h.Write(m[:56])
	switch {
	case ne.Uint32(m[0:]) != boltMagic:
		meta.err = errNotBolt
	case ne.Uint32(m[4:]) != boltVersion:
		meta.err = errMetaVersion
	case ne.Uint64(m[56:]) != h.Sum64():
		meta.err = errMetaChecksum
	case meta.pageSize < 512 || meta.pageSize > 16<<20 || meta.pageSize&(meta.pageSize-1) != 0:
		meta.err = fmt.Errorf("page size %d is not a power of two in [512, 16 MiB]", meta.pageSize)
	}
	return meta
}

// boltFile walks a bbolt file through ReaderAt with every offset checked.
type boltFile struct {
	r        io.ReaderAt
	size     int64
	pageSize int
	// meta is the meta page bbolt would use: the valid one with the
	// higher txid.
	meta  boltMeta
	metas [2]boltMeta
	// reachable and freed mark page ids below the high-water mark.
	reachable, freed []bool
	// freelistSynced says the file holds a freelist page (else bbolt
	// rebuilds the list by a scan at open).
	freelistSynced bool
	// limit is the number of pages that can be read: the high-water mark,
	// or fewer when the file was cut short.
	limit uint64

	problems []string
	nProblem int
	// badPages counts pages a walk could not read (their subtrees are
	// lost to it); badElems counts leaf elements it could not read.
	badPages, badElems int
	// only, when set, limits a walk to that top-level bucket.
	only string
}

func (f *boltFile) problem(format string, args ...any) {
	f.nProblem++
	if len(f.problems) < maxProblems {
		f.problems = append(f.problems, fmt.Sprintf(format, args...))
	}
}

// openBoltFile reads the meta pages and checks the file is as long as they
// say. It returns an error only when no meta page is usable; a file that is
// too short is a problem on the returned file (its pages are not walked).
func openBoltFile(r io.ReaderAt, size int64) (*boltFile, error) {
	f := &boltFile{r: r, size: size}
	if size < 2*512 {
		return nil, fmt.Errorf("the file is %d bytes, shorter than two bbolt pages: it was cut short or is not a feedback db", size)
	}
	buf := make([]byte, boltPageHeader+boltMetaSize)
	if _, err := r.ReadAt(buf, 0); err != nil {
		return nil, fmt.Errorf("read meta page 0: %w", err)
	}
	f.metas[0] = parseMeta(buf)
	// Page 1 sits one page size in; when page 0 does not say the size, try
	// every size bbolt supports, as bbolt does.
	sizes := []int64{int64(f.metas[0].pageSize)}
	if f.metas[0].err != nil {
		sizes = sizes[:0]
		for s := int64(1024); s <= 16<<20; s <<= 1 {
			sizes = append(sizes, s)
		}
	}
	f.metas[1] = boltMeta{err: errNotBolt}
	for _, s := range sizes {
		if s+int64(len(buf)) > size {
			break
		}
		if _, err := r.ReadAt(buf, s); err != nil {
			return nil, fmt.Errorf("read meta page 1: %w", err)
		}
		if m := parseMeta(buf); m.err == nil || f.metas[0].err == nil {
			f.metas[1] = m
			if m.err == nil && f.metas[0].err == nil && m.pageSize != f.metas[0].pageSize {
				f.metas[1].err = fmt.Errorf("page size %d differs from page 0's %d", m.pageSize, f.metas[0].pageSize)
			}
			break
		}
	}
	a, b := 0, 1
	if f.metas[1].txid > f.metas[0].txid {
		a, b = 1, 0
	}
	switch {
	case f.metas[a].err == nil:
		f.meta = f.metas[a]
	case f.metas[b].err == nil:
		f.meta = f.metas[b]
	case errors.Is(f.metas[0].err, errNotBolt) && errors.Is(f.metas[1].err, errNotBolt):
		return nil, errors.New("neither meta page has bbolt's magic number: this is not a bbolt file (or its first pages were overwritten)")
	default:
		return nil, fmt.Errorf("both meta pages are damaged (page 0: %v; page 1: %v)", f.metas[0].err, f.metas[1].err)
	}
	f.pageSize = int(f.meta.pageSize)
	for i, m := range f.metas {
		if m.err != nil {
			f.problem("meta page %d: %v (bbolt falls back on the other copy, one commit older)", i, m.err)
		}
	}
	m := f.meta
	f.limit = m.pgid
	if filePages := uint64(size) / uint64(f.pageSize); m.pgid > filePages {
		f.problem("the file is %d bytes but its meta page says it holds %d pages of %d bytes (%d bytes): it was truncated, pages %d and up are missing",
			size, m.pgid, f.pageSize, m.pgid*uint64(f.pageSize), filePages)
		f.limit = filePages
	}
	if m.pgid < 2 {
		f.problem("the meta page says the file holds %d pages, fewer than its two meta pages", m.pgid)
	}
	f.limit = max(f.limit, 2)
	if m.root < 2 || m.root >= m.pgid {
		f.problem("the root bucket's page %d is outside the file's pages [2, %d)", m.root, m.pgid)
	}
	f.reachable = make([]bool, f.limit)
	f.freed = make([]bool, f.limit)
	return f, nil
}

// page reads page id with its overflow pages, checking that the header
// names the page and the page lies inside the file's pages.
func (f *boltFile) page(id uint64) ([]byte, error) {
	hwm := f.meta.pgid
	if id < 2 || id >= hwm {
		return nil, fmt.Errorf("page %d is outside the file's pages [2, %d)", id, hwm)
	}
	if id >= f.limit {
		return nil, fmt.Errorf("page %d lies past the end of the truncated file", id)
	}
	off := int64(id) * int64(f.pageSize)
	b := make([]byte, f.pageSize)
	if _, err := f.r.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("page %d: read: %w", id, err)
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(b); got != id {
		return nil, fmt.Errorf("page %d: its header says it is page %d (overwritten or zeroed)", id, got)
	}
	if over := uint64(ne.Uint32(b[12:])); over > 0 {
		if id+over >= f.limit {
			return nil, fmt.Errorf("page %d: %d overflow pages run past the file's %d pages", id, over, f.limit)
		}
		b = append(b, make([]byte, int(over)*f.pageSize)...)
		if _, err := f.r.ReadAt(b[f.pageSize:], off+int64(f.pageSize)); err != nil {
			return nil, fmt.Errorf("page %d: read overflow: %w", id, err)
		}
	}
	return b, nil
}

// pageKind is a page's flags and element count.
func pageKind(b []byte) (flags uint16, count int) {
	return binary.NativeEndian.Uint16(b[8:]), int(binary.NativeEndian.Uint16(b[10:]))
}

func flagName(flags uint16) string {
	switch flags {
	case boltBranchFlag:
		return "branch"
	case boltLeafFlag:
		return "leaf"
	case boltMetaFlag:
		return "meta"
	case boltFreelistFlag:
		return "freelist"
	}
	return fmt.Sprintf("unknown (flags %#x)", flags)
}

// readFreelist reads the freelist page, if the file has one, into freed.
func (f *boltFile) readFreelist() {
	id := f.meta.freelist
	if id == boltNoFreelist {
		return
	}
	f.freelistSynced = true
	b, err := f.page(id)
	if err != nil {
		f.problem("freelist: %v", err)
		return
	}
	if flags, _ := pageKind(b); flags != boltFreelistFlag {
		f.problem("freelist: page %d is a %s page, want freelist", id, flagName(flags))
		return
	}
	f.mark(id, b, nil)
	_, count := pageKind(b)
	at := boltPageHeader
	if count == 0xFFFF {
		count = int(min(binary.NativeEndian.Uint64(b[at:]), uint64(len(b))))
		at += 8
	}
	if at+count*8 > len(b) {
		f.problem("freelist: page %d says it lists %d pages, more than fit in it", id, count)
		return
	}
	for i := range count {
		p := binary.NativeEndian.Uint64(b[at+8*i:])
		switch {
		case p < 2 || p >= f.limit:
			f.problem("freelist: lists page %d, outside the file's pages [2, %d)", p, f.limit)
		case f.freed[p]:
			f.problem("freelist: page %d is listed twice", p)
		default:
			f.freed[p] = true
		}
	}
}

// mark records that page id (and its overflow, from its bytes b) is in
// use, reporting a page that is used twice or also free. stack names the
// path to it for the message.
func (f *boltFile) mark(id uint64, b []byte, stack []uint64) bool {
	over := uint64(binary.NativeEndian.Uint32(b[12:]))
	ok := true
	for p := id; p <= id+over; p++ {
		if f.reachable[p] {
			f.problem("page %d: referenced twice (path %v)", p, stack)
			ok = false
		}
		if f.freed[p] {
			f.problem("page %d: on the freelist but in use (path %v)", p, stack)
		}
		f.reachable[p] = true
	}
	return ok
}

// visitFunc receives each key/value of a bucket; bucket is the path of
// bucket names from the root ("log", ...). The slices are only valid
// during the call.
type visitFunc func(bucket []string, k, v []byte)

// walk checks every page reachable from the root bucket and, with visit,
// passes every key/value to it. A damaged page is reported and skipped
// with its subtree.
func (f *boltFile) walk(visit visitFunc) {
	clear(f.reachable)
	clear(f.freed)
	f.reachable[0], f.reachable[1] = true, true
	f.readFreelist()
	f.walkPage(nil, f.meta.root, nil, nil, nil, 0, visit)
	if !f.freelistSynced || f.only != "" {
		return
	}
	for p := uint64(2); p < f.limit; p++ {
		if !f.reachable[p] && !f.freed[p] {
			f.problem("page %d: neither in use nor on the freelist", p)
		}
	}
}

// elements reports whether count elements fit in page b, and reports a
// problem when they do not.
func (f *boltFile) elements(where string, b []byte, count int) bool {
	if boltPageHeader+count*boltElemSize > len(b) {
		f.problem("%s: %d elements do not fit in its %d bytes", where, count, len(b))
		return false
	}
	return true
}

// walkPage checks page id of a bucket (bucket is its path) and its
// subtree: keys in [lo, hi), ascending. It returns the largest key in the
// subtree, as bbolt's key-order check does.
func (f *boltFile) walkPage(bucket []string, id uint64, lo, hi []byte, stack []uint64, depth int, visit visitFunc) []byte {
	stack = append(stack, id)
	if depth > maxTreeDepth {
		f.problem("page %d: the tree is more than %d levels deep (path %v)", id, maxTreeDepth, stack)
		return nil
	}
	b, err := f.page(id)
	if err != nil {
		f.problem("%v (path %v)", err, stack)
		f.badPages++
		return nil
	}
	if !f.mark(id, b, stack) {
		f.badPages++
		return nil
	}
	flags, count := pageKind(b)
	where := fmt.Sprintf("page %d", id)
	switch flags {
	case boltBranchFlag:
		if !f.elements(where, b, count) {
			f.badPages++
			return nil
		}
		keys := make([][]byte, count)
		kids := make([]uint64, count)
		for i := range count {
			e := boltPageHeader + i*boltElemSize
			pos, ksize := uint64(binary.NativeEndian.Uint32(b[e:])), uint64(binary.NativeEndian.Uint32(b[e+4:]))
			if uint64(e)+pos+ksize > uint64(len(b)) {
				f.problem("%s: branch element %d points past the page (path %v)", where, i, stack)
				f.badPages++
				return nil
			}
			keys[i] = b[uint64(e)+pos : uint64(e)+pos+ksize]
			kids[i] = binary.NativeEndian.Uint64(b[e+8:])
		}
		running := lo
		var last []byte
		for i := range count {
			f.keyOrder(where, "branch", i, keys[i], running, hi, stack)
			next := hi
			if i+1 < count {
				next = keys[i+1]
			}
			last = f.walkPage(bucket, kids[i], keys[i], next, stack, depth+1, visit)
			running = last
		}
		return last
	case boltLeafFlag:
		return f.walkLeaf(bucket, where, b, count, lo, hi, stack, depth, visit)
	default:
		f.problem("%s: is a %s page where a branch or leaf page belongs (path %v)", where, flagName(flags), stack)
		f.badPages++
		return nil
	}
}

// walkLeaf checks leaf page b (a page of the file, or a bucket's inline
// page) and visits or descends into its elements.
func (f *boltFile) walkLeaf(bucket []string, where string, b []byte, count int, lo, hi []byte, stack []uint64, depth int, visit visitFunc) []byte {
	if !f.elements(where, b, count) {
		f.badPages++
		return nil
	}
	type elem struct {
		bucket bool
		k, v   []byte
	}
	elems := make([]elem, 0, count)
	running := lo
	for i := range count {
		e := boltPageHeader + i*boltElemSize
		ne := binary.NativeEndian
		flags := ne.Uint32(b[e:])
		pos, ksize, vsize := uint64(ne.Uint32(b[e+4:])), uint64(ne.Uint32(b[e+8:])), uint64(ne.Uint32(b[e+12:]))
		if uint64(e)+pos+ksize+vsize > uint64(len(b)) || flags&^boltBucketFlag != 0 {
			// The element's own header is bad; the others may be fine,
			// and a salvage keeps them.
			f.problem("%s: leaf element %d is damaged (flags %#x, %d+%d bytes at %d of a %d-byte page) (path %v)", where, i, flags, ksize, vsize, e+int(pos), len(b), stack)
			f.badElems++
			continue
		}
		k := b[uint64(e)+pos : uint64(e)+pos+ksize]
		f.keyOrder(where, "leaf", i, k, running, hi, stack)
		running = k
		elems = append(elems, elem{bucket: flags&boltBucketFlag != 0, k: k, v: b[uint64(e)+pos+ksize : uint64(e)+pos+ksize+vsize]})
	}
	for _, el := range elems {
		if !el.bucket {
			if visit != nil {
				visit(bucket, el.k, el.v)
			}
			continue
		}
		if len(bucket) == 0 && f.only != "" && string(el.k) != f.only {
			continue
		}
		sub := append(bucket[:len(bucket):len(bucket)], string(el.k))
		if len(el.v) < boltBucketHeader {
			f.problem("%s: bucket %q has a %d-byte header, want %d (path %v)", where, el.k, len(el.v), boltBucketHeader, stack)
			continue
		}
		root := binary.NativeEndian.Uint64(el.v)
		if root != 0 {
			f.walkPage(sub, root, nil, nil, stack, depth+1, visit)
			continue
		}
		// An inline bucket: its leaf page follows the header.
		in := el.v[boltBucketHeader:]
		if len(in) < boltPageHeader {
			f.problem("%s: inline bucket %q is %d bytes, shorter than a page header (path %v)", where, el.k, len(in), stack)
			continue
		}
		iflags, icount := pageKind(in)
		if iflags != boltLeafFlag {
			f.problem("%s: inline bucket %q is a %s page, want leaf (path %v)", where, el.k, flagName(iflags), stack)
			continue
		}
		if depth+1 > maxTreeDepth {
			f.problem("%s: buckets nest more than %d deep (path %v)", where, maxTreeDepth, stack)
			continue
		}
		f.walkLeaf(sub, fmt.Sprintf("%s, inline bucket %q", where, el.k), in, icount, nil, nil, stack, depth+1, visit)
	}
	if len(elems) > 0 {
		return elems[len(elems)-1].k
	}
	return nil
}

// keyOrder reports a key out of order as bbolt's Tx.Check does: the
// first key of a page at or above its lower bound, each key above the one
// before, every key below the upper bound.
func (f *boltFile) keyOrder(where, kind string, i int, key, prev, hi []byte, stack []uint64) {
	switch {
	case i == 0 && prev != nil && bytes.Compare(prev, key) > 0:
		f.problem("%s: %s key %d (%x) is below the key above it in the tree (%x) (path %v)", where, kind, i, key, prev, stack)
	case i > 0 && bytes.Compare(prev, key) >= 0:
		f.problem("%s: %s key %d (%x) is not above the key before it (%x) (path %v)", where, kind, i, key, prev, stack)
	}
	if hi != nil && bytes.Compare(key, hi) >= 0 {
		f.problem("%s: %s key %d (%x) is not below the next key of its parent (%x) (path %v)", where, kind, i, key, hi, stack)
	}
}

// orphans visits the entries of leaf pages that the last full walk did not
// reach and the freelist does not list: what a damaged branch page (or a
// truncation that took the root, which bbolt writes last) cut off from the
// tree. Without a readable freelist such pages may also hold entries a
// later commit replaced or removed. bucket is nil: the caller tells the
// entries apart by their shape.
func (f *boltFile) orphans(visit func(k, v []byte)) (pages int) {
	for p := uint64(2); p < f.limit; p++ {
		if f.reachable[p] || f.freed[p] {
			continue
		}
		b, err := f.page(p)
		if err != nil {
			continue // overflow pages of others, zeroed or unwritten pages
		}
		flags, count := pageKind(b)
		if flags != boltLeafFlag || boltPageHeader+count*boltElemSize > len(b) {
			continue
		}
		pages++
		for i := range count {
			e := boltPageHeader + i*boltElemSize
			ne := binary.NativeEndian
			flags := ne.Uint32(b[e:])
			pos, ksize, vsize := uint64(ne.Uint32(b[e+4:])), uint64(ne.Uint32(b[e+8:])), uint64(ne.Uint32(b[e+12:]))
			if flags != 0 || uint64(e)+pos+ksize+vsize > uint64(len(b)) {
				continue
			}
			k := b[uint64(e)+pos : uint64(e)+pos+ksize]
			visit(k, b[uint64(e)+pos+ksize:uint64(e)+pos+ksize+vsize])
		}
		// Its overflow pages are part of it, not pages of their own.
		for q := p; q <= p+uint64(binary.NativeEndian.Uint32(b[12:])); q++ {
			f.reachable[q] = true
		}
	}
	return pages
}
