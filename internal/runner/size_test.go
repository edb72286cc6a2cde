package runner

import "testing"

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"256m": 256 << 20, "256M": 256 << 20, "1g": 1 << 30, "64k": 64 << 10, "100": 100, "100b": 100, "-1": -1, " 2G ": 2 << 30,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "m", "-2", "1.5g", "1t", "9999999999999g", "0x10", "1 m"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}
