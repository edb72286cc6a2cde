package main

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
)

// suffixLen is the number of bytes that make each blob of a set unique.
const suffixLen = 16

// blobFactory hands out sets of distinct blobs. All blobs of one size share a
// random prefix that is generated (and hashed) once; each blob differs only in
// its last suffixLen bytes. A blob therefore costs no memory of its own, and
// its digest costs one SHA-256 block on top of the saved prefix state, so
// neither random generation nor hashing is part of any measurement.
type blobFactory struct {
	rng      *rand.ChaCha8
	prefixes map[int64]*prefix
}

type prefix struct {
	data  []byte
	state []byte // marshalled SHA-256 state after hashing data
}

func newBlobFactory(seed uint64) *blobFactory {
	var s [32]byte
	binary.LittleEndian.PutUint64(s[:], seed)
	return &blobFactory{rng: rand.NewChaCha8(s), prefixes: map[int64]*prefix{}}
}

func (f *blobFactory) prefix(size int64) (*prefix, error) {
	if p, ok := f.prefixes[size]; ok {
		return p, nil
	}
	if size < suffixLen {
		return nil, fmt.Errorf("blob size %d below %d", size, suffixLen)
	}
	data := make([]byte, size-suffixLen)
	_, _ = f.rng.Read(data) // ChaCha8.Read never fails
	h := sha256.New()
	h.Write(data)
	state, err := h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	p := &prefix{data: data, state: state}
	f.prefixes[size] = p
	return p, nil
}

// blobSet is n distinct blobs of one size, with digests computed up front.
type blobSet struct {
	size     int64
	prefix   []byte
	suffixes [][suffixLen]byte
	digests  []string
}

// set returns n blobs of the given size. salt must differ between sets that
// may land in the same server, so that no two sets share a blob.
func (f *blobFactory) set(size int64, n int, salt uint64) (*blobSet, error) {
	p, err := f.prefix(size)
	if err != nil {
		return nil, err
	}
	s := &blobSet{
		size:     size,
		prefix:   p.data,
		suffixes: make([][suffixLen]byte, n),
		digests:  make([]string, n),
	}
	for i := range n {
		binary.BigEndian.PutUint64(s.suffixes[i][:8], salt)
		binary.BigEndian.PutUint64(s.suffixes[i][8:], uint64(i))
		h := sha256.New()
		if err := h.(encoding.BinaryUnmarshaler).UnmarshalBinary(p.state); err != nil {
			return nil, err
		}
		h.Write(s.suffixes[i][:])
		s.digests[i] = "sha256:" + hex.EncodeToString(h.Sum(nil))
	}
	return s, nil
}

func (s *blobSet) len() int { return len(s.digests) }

// digest returns the digest of blob i.
func (s *blobSet) digest(i int) string { return s.digests[i] }

// reader returns a fresh reader over the content of blob i.
func (s *blobSet) reader(i int) io.Reader {
	return io.MultiReader(bytes.NewReader(s.prefix), bytes.NewReader(s.suffixes[i][:]))
}
