package network

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParsePublish(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string // canonical form, "" = error
	}{
		{"127.0.0.1:8080:80", "127.0.0.1:8080:80/tcp"},
		{"0.0.0.0:53:5353/udp", "0.0.0.0:53:5353/udp"},
		{"10.0.0.1:65535:1/tcp", "10.0.0.1:65535:1/tcp"},
		{"8080:80", ""},                // host address required (CIS 5.14)
		{"80", ""},                     //
		{":8080:80", ""},               //
		{"localhost:8080:80", ""},      // an address, not a name
		{"[::1]:8080:80", ""},          // IPv6
		{"::1:8080:80", ""},            //
		{"127.0.0.1:0:80", ""},         // port 0
		{"127.0.0.1:8080:65536", ""},   // out of range
		{"127.0.0.1:+80:80", ""},       // sign
		{"127.0.0.1:8080:80/sctp", ""}, // protocol
		{"127.0.0.1:8080:80/", ""},
		{"127.0.0.1:8080:80/tcp/udp", ""},
		{"127.0.0.1:08080:80", "127.0.0.1:8080:80/tcp"},
		{"127.0.0.1:000080:80", ""}, // longer than a port
		{"1.2.3:8080:80", ""},
		{"", ""},
	} {
		got, err := ParsePublish(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %s", c.in, got)
			} else if !errors.Is(err, ErrSpec) {
				t.Errorf("%q: error %v is not ErrSpec", c.in, err)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%q: %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestParseEgress(t *testing.T) {
	for _, c := range []struct {
		in, want string
	}{
		{"db.internal:5432", "db.internal:5432/tcp"},
		{"DB.Example.COM.:443", "db.example.com:443/tcp"},
		{"10.1.2.3:53/udp", "10.1.2.3:53/udp"},
		{"a:1", "a:1/tcp"},
		{"xn--bcher-kva.example:80", "xn--bcher-kva.example:80/tcp"},
		{"db.internal", ""},        // port required
		{"db.internal:0", ""},      //
		{"[2001:db8::1]:443", ""},  // IPv6
		{"2001:db8::1:443", ""},    //
		{"0.0.0.0:80", ""},         // not a host
		{"224.0.0.1:80", ""},       // multicast
		{"255.255.255.255:80", ""}, //
		{"10.0.0.300:80", ""},      // a bad address is not a name
		{"-bad.example:80", ""},
		{"bad-.example:80", ""},
		{"under_score.example:80", ""},
		{"a..b:80", ""},
		{"space host:80", ""},
		{"host:80/icmp", ""},
		{strings.Repeat("a", 64) + ".example:80", ""},
		{strings.Repeat("abcdefghi.", 26) + "com:80", ""}, // > 253
		{":80", ""},
	} {
		got, err := ParseEgress(c.in)
		if c.want == "" {
			if err == nil {
				t.Errorf("%q: accepted as %s", c.in, got)
			}
			continue
		}
		if err != nil || got.String() != c.want {
			t.Errorf("%q: %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	pub := func(s ...string) []Publish {
		var out []Publish
		for _, x := range s {
			p, err := ParsePublish(x)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, p)
		}
		return out
	}
	for _, c := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"empty", Config{}, true},
		{"two ports", Config{Publish: pub("127.0.0.1:80:80", "127.0.0.1:81:80")}, true},
		{"tcp and udp on one port", Config{Publish: pub("127.0.0.1:53:53", "127.0.0.1:53:53/udp")}, true},
		{"same port, two addresses", Config{Publish: pub("127.0.0.1:80:80", "10.0.0.1:80:81")}, true},
		{"same host port twice", Config{Publish: pub("127.0.0.1:80:80", "127.0.0.1:80:81")}, false},
		{"all addresses and one", Config{Publish: pub("0.0.0.0:80:80", "127.0.0.1:80:81")}, false},
		{"too many", Config{Publish: make([]Publish, MaxPublish+1)}, false},
		{"zero value entry", Config{Publish: make([]Publish, 1)}, false},
		{"bad egress", Config{Egress: []Egress{{Host: "a b", Port: 1, Proto: TCP}}}, false},
	} {
		err := c.cfg.Validate()
		if (err == nil) != c.ok {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

func TestParseProfile(t *testing.T) {
	good := `# web front end
publish:
  - 127.0.0.1:8080:8080
  - 0.0.0.0:8443:8443
allow_egress:
  - db.internal:5432
  - 10.0.0.53:53/udp
cap_add: [CAP_NET_BIND_SERVICE]
`
	p, err := ParseProfile([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Network.Publish) != 2 || p.Network.Publish[1].String() != "0.0.0.0:8443:8443/tcp" ||
		len(p.Network.Egress) != 2 || p.Network.Egress[1].String() != "10.0.0.53:53/udp" ||
		len(p.CapAdd) != 1 || p.CapAdd[0] != "CAP_NET_BIND_SERVICE" {
		t.Errorf("parsed %+v", p)
	}
	if p, err := ParseProfile(nil); err != nil || !p.Network.Empty() {
		t.Errorf("empty profile: %+v %v", p, err)
	}
	if p, err := ParseProfile([]byte("# nothing\n")); err != nil || !p.Network.Empty() {
		t.Errorf("comment-only profile: %+v %v", p, err)
	}

	for name, doc := range map[string]string{
		"unknown key":       "publish: []\nmounts: [/etc]\n",
		"typo":              "allow-egress: [a:1]\n",
		"repeated key":      "publish: [127.0.0.1:1:1]\npublish: [127.0.0.1:2:2]\n",
		"two documents":     "publish: []\n---\ncap_add: [CAP_KILL]\n",
		"not a list":        "publish: 127.0.0.1:8080:80\n",
		"not a mapping":     "- 127.0.0.1:8080:80\n",
		"number entry":      "allow_egress: [5432]\n",
		"nested":            "allow_egress: [[a:1]]\n",
		"bad publish":       "publish: ['8080:80']\n",
		"bad egress":        "allow_egress: ['[::1]:80']\n",
		"bad cap":           "cap_add: [net_admin]\n",
		"cap with junk":     "cap_add: ['CAP_KILL; rm']\n",
		"conflict":          "publish: [0.0.0.0:80:80, 127.0.0.1:80:81]\n",
		"too large":         "# " + strings.Repeat("x", MaxProfileSize) + "\n",
		"alias bomb":        "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]\npublish: [*b, *b, *b, *b, *b, *b, *b, *b, *b]\n",
		"binary":            "\x00\x01\x02",
		"tab indentation":   "publish:\n\t- 127.0.0.1:1:1\n",
		"null entry":        "allow_egress: [~]\n",
		"too many":          "allow_egress: [" + strings.Repeat("a:1, ", MaxEgress+1) + "a:1]\n",
		"explicit tag":      "publish: !!binary aGVsbG8=\n",
		"document end junk": "publish: []\n...\ngarbage: [\n",
	} {
		if p, err := ParseProfile([]byte(doc)); err == nil {
			t.Errorf("%s: accepted: %+v", name, p)
		} else if !errors.Is(err, ErrProfile) {
			t.Errorf("%s: %v is not ErrProfile", name, err)
		}
	}
}

func TestLoadProfile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "web.yaml")
	os.WriteFile(p, []byte("publish: [127.0.0.1:8080:80]\n"), 0o600)
	got, err := LoadProfile(p)
	if err != nil || len(got.Network.Publish) != 1 {
		t.Errorf("%+v %v", got, err)
	}
	if _, err := LoadProfile(filepath.Join(dir, "missing.yaml")); !errors.Is(err, ErrProfile) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadProfile(dir); !errors.Is(err, ErrProfile) {
		t.Errorf("a directory: %v", err)
	}
	big := filepath.Join(dir, "big.yaml")
	os.WriteFile(big, []byte("#"+strings.Repeat("x", 2*MaxProfileSize)), 0o600)
	if _, err := LoadProfile(big); !errors.Is(err, ErrProfile) {
		t.Errorf("oversized file: %v", err)
	}
}

func FuzzParseProfile(f *testing.F) {
	for _, s := range []string{
		"publish: [127.0.0.1:8080:80]\nallow_egress: [db:5432]\ncap_add: [CAP_KILL]\n",
		"allow_egress: [10.0.0.1:53/udp]\n",
		"publish: !!binary aGVsbG8=\n",
		"a: &a [x]\nb: [*a]\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := ParseProfile(b)
		if err != nil {
			if !errors.Is(err, ErrProfile) {
				t.Fatalf("error %v is not ErrProfile", err)
			}
			return
		}
		// Whatever is accepted is a valid configuration whose entries
		// parse back to themselves.
		if err := p.Network.Validate(); err != nil {
			t.Fatalf("accepted an invalid configuration: %v", err)
		}
		for _, x := range p.Network.Publish {
			if y, err := ParsePublish(x.String()); err != nil || y != x {
				t.Fatalf("publish %s does not round-trip: %v %v", x, y, err)
			}
		}
		for _, x := range p.Network.Egress {
			if y, err := ParseEgress(x.String()); err != nil || y != x {
				t.Fatalf("egress %s does not round-trip: %v %v", x, y, err)
			}
		}
		for _, c := range p.CapAdd {
			if !validCapName(c) {
				t.Fatalf("capability %q accepted", c)
			}
		}
	})
}

func FuzzParseSpecs(f *testing.F) {
	for _, s := range []string{"127.0.0.1:8080:80", "0.0.0.0:53:53/udp", "db.internal:5432", "[::1]:80", "a:1/udp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if p, err := ParsePublish(s); err == nil {
			if !p.HostIP.Is4() || p.HostPort == 0 || p.Port == 0 {
				t.Fatalf("%q: accepted %+v", s, p)
			}
			if q, err := ParsePublish(p.String()); err != nil || q != p {
				t.Fatalf("%q: %s does not round-trip", s, p)
			}
		}
		if e, err := ParseEgress(s); err == nil {
			if e.Port == 0 || strings.ContainsAny(e.Host, " :/[]\x00") {
				t.Fatalf("%q: accepted %+v", s, e)
			}
			if q, err := ParseEgress(e.String()); err != nil || q != e {
				t.Fatalf("%q: %s does not round-trip", s, e)
			}
		}
	})
}
