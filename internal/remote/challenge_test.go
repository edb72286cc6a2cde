package remote

import (
	"reflect"
	"testing"
)

func TestParseChallenges(t *testing.T) {
	tests := []struct {
		in      string
		want    []Challenge
		wantErr bool
	}{
		{`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull,push"`,
			[]Challenge{{"bearer", map[string]string{"realm": "https://auth.example/token", "service": "registry.example", "scope": "repository:a/b:pull,push"}}}, false},
		{`bearer  Realm = "x" ,  SERVICE=y`, []Challenge{{"bearer", map[string]string{"realm": "x", "service": "y"}}}, false},
		{`Bearer realm=https://auth.example/token,service=reg`, []Challenge{{"bearer", map[string]string{"realm": "https://auth.example/token", "service": "reg"}}}, false},
		{`Bearer realm="a \"quoted\" \\ value, with comma"`, []Challenge{{"bearer", map[string]string{"realm": `a "quoted" \ value, with comma`}}}, false},
		{`Basic realm="bulwark admin", Bearer realm="t",scope="a b"`,
			[]Challenge{{"basic", map[string]string{"realm": "bulwark admin"}}, {"bearer", map[string]string{"realm": "t", "scope": "a b"}}}, false},
		{`Bearer`, []Challenge{{"bearer", map[string]string{}}}, false},
		{`Bearer realm=""`, []Challenge{{"bearer", map[string]string{"realm": ""}}}, false},
		{``, nil, true},
		{`Bearer realm="x`, nil, true},
		{`Bearer realm="x\`, nil, true},
		{`Bearer realm=x, realm=y`, nil, true},
		{`"Bearer"`, nil, true},
		{`Bearer realm="x" @`, nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseChallenges(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// FuzzParseChallenge: the parser never panics, and what it accepts it can
// render and parse back to the same challenges.
func FuzzParseChallenge(f *testing.F) {
	for _, s := range []string{
		`Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"`,
		`Basic realm="x", Bearer realm=y`,
		`Bearer realm="a \"b\" \\"`,
		`Bearer realm=`,
		`,,, Bearer ,realm=x`,
		`Negotiate abc==`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		cs, err := ParseChallenges(s)
		if err != nil {
			return
		}
		var joined string
		for i, c := range cs {
			if c.Scheme == "" {
				t.Fatalf("empty scheme from %q", s)
			}
			if i > 0 {
				joined += ", "
			}
			joined += c.String()
		}
		again, err := ParseChallenges(joined)
		if err != nil {
			t.Fatalf("%q parsed, its rendering %q did not: %v", s, joined, err)
		}
		if !reflect.DeepEqual(again, cs) {
			t.Fatalf("%q → %#v, rendered %q → %#v", s, cs, joined, again)
		}
	})
}
