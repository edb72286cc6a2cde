// Package storetest is the conformance suite every store backend must pass,
// in the spirit of distribution's storage driver testsuites: TestBlobs for
// store.Blobs implementations and TestMeta for store.Meta implementations.
//
// A backend wires it up from its own tests:
//
//	func TestBlobs(t *testing.T) {
//		storetest.TestBlobs(t, func(t *testing.T) store.Blobs { … open in t.TempDir() … })
//	}
//
// open is called once per subtest with that subtest's t, must return a new,
// empty store, and should register the store's cleanup on t. Subtests run in
// parallel, so open must be safe to call concurrently.
package storetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
)

// subtest is one named conformance check.
type subtest[S any] struct {
	name string
	fn   func(t *testing.T, s S)
}

func run[S any](t *testing.T, open func(t *testing.T) S, tests []subtest[S]) {
	t.Helper()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// wantErr fails unless err matches target (errors.Is).
func wantErr(t *testing.T, what string, err, target error) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Errorf("%s: got error %v, want %v", what, err, target)
	}
}

// noErr stops the subtest on an unexpected error.
func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// sortedDigests returns a sorted copy of ds, treating nil and empty alike.
func sortedDigests(ds []digest.Digest) []digest.Digest {
	out := append([]digest.Digest{}, ds...)
	slices.Sort(out)
	return out
}

// sortedStrings returns a sorted copy of ss, treating nil and empty alike.
func sortedStrings(ss []string) []string {
	out := append([]string{}, ss...)
	slices.Sort(out)
	return out
}
