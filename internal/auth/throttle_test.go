package auth

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// throttleStep is one action in a throttle scenario: record a failure or
// success, move the clock, or check the wait.
type throttleStep struct {
	op              string // "fail", "ok", "wait", "check"
	source, account string
	d               time.Duration // "wait": clock advance; "check": expected wait
}

func thFail(src, acct string) throttleStep {
	return throttleStep{op: "fail", source: src, account: acct}
}
func thOK(src, acct string) throttleStep   { return throttleStep{op: "ok", source: src, account: acct} }
func thSleep(d time.Duration) throttleStep { return throttleStep{op: "wait", d: d} }
func thFails(n int, src, acct string) []throttleStep {
	out := make([]throttleStep, n)
	for i := range out {
		out[i] = thFail(src, acct)
	}
	return out
}
func thCheck(src, acct string, want time.Duration) throttleStep {
	return throttleStep{op: "check", source: src, account: acct, d: want}
}

func TestThrottle(t *testing.T) {
	cat := func(parts ...any) []throttleStep {
		var out []throttleStep
		for _, p := range parts {
			switch v := p.(type) {
			case throttleStep:
				out = append(out, v)
			case []throttleStep:
				out = append(out, v...)
			}
		}
		return out
	}
	tests := []struct {
		name  string
		steps []throttleStep
	}{
		{"four failures are free", cat(thFails(4, "1.1.1.1", "alice"), thCheck("1.1.1.1", "alice", 0))},
		{"the fifth starts the backoff", cat(thFails(5, "1.1.1.1", "alice"),
			thCheck("1.1.1.1", "alice", time.Second),
			thSleep(400*time.Millisecond), thCheck("1.1.1.1", "alice", 600*time.Millisecond),
			thSleep(600*time.Millisecond), thCheck("1.1.1.1", "alice", 0))},
		{"each further failure doubles the wait", cat(thFails(8, "1.1.1.1", "alice"), thCheck("1.1.1.1", "alice", 8*time.Second))},
		{"the wait is capped", cat(thFails(40, "1.1.1.1", "alice"), thCheck("1.1.1.1", "alice", DefaultThrottleMax))},
		{"one account from many sources", cat(
			thFail("1.1.1.1", "alice"), thFail("2.2.2.2", "alice"), thFail("3.3.3.3", "alice"), thFail("4.4.4.4", "alice"), thFail("5.5.5.5", "alice"),
			thCheck("6.6.6.6", "alice", time.Second), thCheck("6.6.6.6", "bob", 0))},
		{"one source against many accounts", cat(
			thFail("1.1.1.1", "a"), thFail("1.1.1.1", "b"), thFail("1.1.1.1", "c"), thFail("1.1.1.1", "d"), thFail("1.1.1.1", "e"),
			thCheck("1.1.1.1", "f", time.Second), thCheck("2.2.2.2", "f", 0))},
		{"port does not matter", cat(thFails(5, "1.1.1.1:1234", "x"), thCheck("1.1.1.1:999", "y", time.Second))},
		{"IPv6 counted per /64", cat(
			thFail("[2001:db8::1]:1", "a"), thFail("2001:db8::2", "b"), thFail("2001:db8::ffff:1", "c"), thFail("2001:db8::3", "d"), thFail("2001:db8:0:0:1::1", "e"),
			thCheck("2001:db8::99", "z", time.Second), thCheck("2001:db8:0:1::1", "z", 0))},
		{"IPv4-mapped IPv6 is IPv4", cat(thFails(5, "::ffff:10.0.0.1", "a"), thCheck("10.0.0.1", "b", time.Second))},
		{"success clears the account, not the source", cat(thFails(5, "1.1.1.1", "alice"),
			thOK("1.1.1.1", "alice"),
			thCheck("2.2.2.2", "alice", 0), thCheck("1.1.1.1", "bob", time.Second))},
		{"failures are forgotten after the window", cat(thFails(4, "1.1.1.1", "alice"),
			thSleep(DefaultThrottleWindow), thFail("1.1.1.1", "alice"), thCheck("1.1.1.1", "alice", 0))},
		{"within the window they add up", cat(thFails(4, "1.1.1.1", "alice"),
			thSleep(DefaultThrottleWindow-time.Second), thFail("1.1.1.1", "alice"), thCheck("1.1.1.1", "alice", time.Second))},
		{"a throttled attacker stays throttled", cat(thFails(10, "1.1.1.1", "alice"),
			thSleep(32*time.Second), thCheck("1.1.1.1", "alice", 0), thFail("1.1.1.1", "alice"),
			thCheck("1.1.1.1", "alice", 64*time.Second))},
		{"empty keys are not tracked", cat(thFails(10, "", ""), thCheck("", "", 0), thCheck("1.1.1.1", "", 0))},
		{"long names are tracked by hash", cat(thFails(5, "1.1.1.1", strings.Repeat("x", 1000)),
			thCheck("2.2.2.2", strings.Repeat("x", 1000), time.Second), thCheck("2.2.2.2", strings.Repeat("x", 999), 0))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			clock := newAuthClock()
			th := NewThrottle(ThrottleConfig{})
			for i, s := range tc.steps {
				switch s.op {
				case "fail":
					th.Failure(s.source, s.account, clock.Now())
				case "ok":
					th.Success(s.source, s.account, clock.Now())
				case "wait":
					clock.Add(s.d)
				case "check":
					if got := th.Check(s.source, s.account, clock.Now()); got != s.d {
						t.Fatalf("step %d: Check(%q, %q) = %v, want %v", i, s.source, clip(s.account), got, s.d)
					}
				}
			}
		})
	}
}

func TestThrottleBoundedAndStats(t *testing.T) {
	clock := newAuthClock()
	var mu sync.Mutex
	var events []ThrottleEvent
	th := NewThrottle(ThrottleConfig{MaxEntries: 100, OnThrottle: func(ev ThrottleEvent) {
		mu.Lock()
		defer mu.Unlock()
		events = append(events, ev)
	}})
	// An attacker spraying random names from random sources.
	for i := range 10000 {
		th.Failure(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), fmt.Sprintf("user%d", i), clock.Now())
	}
	st := th.Stats()
	if st.Sources > 100 || st.Accounts > 100 {
		t.Fatalf("tracked %d sources, %d accounts; bound is 100", st.Sources, st.Accounts)
	}
	if st.Failures != 10000 || st.Evicted < 2*(10000-100) {
		t.Fatalf("stats %+v", st)
	}

	// Expired entries make room without counting as evictions.
	clock.Add(DefaultThrottleWindow)
	th.Failure("192.0.2.1", "x", clock.Now())
	if after := th.Stats(); after.Evicted != st.Evicted {
		t.Fatalf("evicted %d → %d for expired entries", st.Evicted, after.Evicted)
	}

	// The hook sees refusals, with which limit applied.
	for range 5 {
		th.Failure("192.0.2.9", "victim", clock.Now())
	}
	if w := th.Check("198.51.100.1", "victim", clock.Now()); w != time.Second {
		t.Fatalf("wait %v", w)
	}
	if len(events) != 1 || events[0].By != "account" || events[0].Account != "victim" || events[0].Failures != 5 || events[0].Wait != time.Second {
		t.Fatalf("events %+v", events)
	}
	if th.Stats().Throttled != 1 {
		t.Fatalf("throttled count %d", th.Stats().Throttled)
	}
}

func TestThrottleConcurrent(t *testing.T) {
	th := NewThrottle(ThrottleConfig{MaxEntries: 50})
	now := time.Now()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 2000 {
				src, acct := fmt.Sprintf("10.0.%d.%d", g, i%200), fmt.Sprintf("u%d", i%70)
				th.Check(src, acct, now)
				if i%3 == 0 {
					th.Success(src, acct, now)
				} else {
					th.Failure(src, acct, now)
				}
			}
		})
	}
	wg.Wait()
	if st := th.Stats(); st.Sources > 50 || st.Accounts > 50 {
		t.Fatalf("stats %+v", st)
	}
}

func TestConstantTimeEqual(t *testing.T) {
	tests := []struct {
		a, b string
		want bool
	}{
		{"", "", true},
		{"secret", "secret", true},
		{"secret", "Secret", false},
		{"secret", "secret2", false},
		{"secret", "", false},
		{strings.Repeat("a", 10000), strings.Repeat("a", 10000), true},
		{strings.Repeat("a", 10000), strings.Repeat("a", 9999) + "b", false},
	}
	for _, tc := range tests {
		if got := ConstantTimeEqual(tc.a, tc.b); got != tc.want {
			t.Errorf("ConstantTimeEqual(%q, %q) = %v", clip(tc.a), clip(tc.b), got)
		}
	}
}
