package loopback

import "testing"

func TestHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST:5000": true, "127.0.0.1": true, "127.1.2.3:80": true, "[::1]:5000": true, "::1": true,
		"10.0.0.1:5000": false, "registry.example": false, "localhost.example:5000": false, "": false, "[::2]:1": false, "0.0.0.0:5000": false,
	} {
		if got := Host(host); got != want {
			t.Errorf("Host(%q) = %v, want %v", host, got, want)
		}
	}
}
