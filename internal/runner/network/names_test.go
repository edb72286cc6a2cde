package network

import (
	"regexp"
	"testing"
)

// The validators replace regular expressions compiled at start-up; they
// must accept exactly what the expressions accepted.
var (
	tableNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$`)
	capRE       = regexp.MustCompile(`^CAP_[A-Z_]{1,32}$`)
)

var nameCorpus = []string{"", "a", "A9", "_a", "a_", "a.b-c_d", "-x", "bulwark-web.1", "ä", "a b", "a\x00",
	"0123456789012345678901234567890123456789012345678901234567890123"[:63],
	"0123456789012345678901234567890123456789012345678901234567890123",
	"CAP_", "CAP_NET_BIND_SERVICE", "CAP_net", "cap_CHOWN", "CAP_ABCDEFGHIJKLMNOPQRSTUVWXYZ_ABCDEF", "CAP_ABCDEFGHIJKLMNOPQRSTUVWXYZ_ABCDEFG", "XCAP_A"}

func TestNameValidatorsMatchPatterns(t *testing.T) {
	for _, s := range nameCorpus {
		if got, want := validTableName(s), tableNameRE.MatchString(s); got != want {
			t.Errorf("validTableName(%q) = %v, pattern says %v", s, got, want)
		}
		if got, want := validCapName(s), capRE.MatchString(s); got != want {
			t.Errorf("validCapName(%q) = %v, pattern says %v", s, got, want)
		}
	}
}

func FuzzNameValidators(f *testing.F) {
	for _, s := range nameCorpus {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := validTableName(s), tableNameRE.MatchString(s); got != want {
			t.Fatalf("validTableName(%q) = %v, pattern says %v", s, got, want)
		}
		if got, want := validCapName(s), capRE.MatchString(s); got != want {
			t.Fatalf("validCapName(%q) = %v, pattern says %v", s, got, want)
		}
	})
}
