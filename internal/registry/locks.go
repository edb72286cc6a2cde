package registry

import (
	"hash/maphash"
	"sync"
)

// keyLocks is a fixed set of mutexes striped by key. It serialises work on
// one digest or one upload without a global lock and without a map that
// grows with the number of keys ever seen.
type keyLocks struct {
	seed  maphash.Seed
	locks [256]sync.Mutex
}

func newKeyLocks() *keyLocks { return &keyLocks{seed: maphash.MakeSeed()} }

func (k *keyLocks) lock(key string) func() {
	m := &k.locks[maphash.String(k.seed, key)%uint64(len(k.locks))]
	m.Lock()
	return m.Unlock
}
