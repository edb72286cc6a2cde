// Package audit is bulwark's tamper-evident audit trail: who did what to
// which repository, when, from where, and with what outcome.
//
// # What is recorded
//
// One [Event] per login, token issued, manifest push, pull and delete,
// account and permission change, and every denial. Event.Action is a short
// free-form string; the values bulwark writes are the Action* constants
// (login, token, push, pull, delete, user.add, user.rm, robot.create,
// robot.rotate, robot.rm, grant, revoke) plus the log's own system events
// (audit.repair, audit.restart). Event.Kind is one of user, robot,
// anonymous, system; Event.Outcome one of ok, denied, failed.
//
// # File format
//
// The log is one file, DATA/audit.log ([PathIn]), mode 0600, written only by
// appending. Each line is one event, the JSON encoding of [Event] followed
// by "\n". Every field is always present, in the order of the struct:
//
//	{"seq":1,"time":"…","who":"…","kind":"…","action":"…","repository":"…",
//	 "reference":"…","digest":"…","remote":"…","outcome":"…","detail":"…",
//	 "prev":"…","hash":"…"}
//
// seq counts entries from 1 without gaps; time is UTC in RFC 3339 with
// nanoseconds and no trailing zeros (Go's time.RFC3339Nano); prev is the
// hash of the previous line ("" on the first line); hash is defined below.
//
// # Canonical encoding and the hash chain
//
// The canonical encoding of an entry is Go's encoding/json.Marshal of the
// Event with Hash set to "": compact, fields in struct order, strings with
// Go's escaping (<, > and & as \u003c \u003e \u0026, U+2028/2029 and
// control characters escaped; the writer has already replaced invalid UTF-8
// by U+FFFD, written unescaped). Hash is the lowercase hex SHA-256 of
// those bytes. Because hex digits need no escaping, the stored line is its
// canonical encoding with the 64 hex digits written between the final pair
// of quotes, so an outside tool verifies a line without re-encoding it:
//
//	hash == sha256(line with its final `"hash":"<64 hex>"}` replaced by `"hash":""}`)
//
// and the chain by checking that each line's prev equals the previous
// line's hash and its seq is one more than the previous seq. [Verify] also
// insists that each line is exactly the canonical encoding of what it
// decodes to (no extra whitespace, duplicate or re-cased keys), so what a
// JSON reader sees is what was hashed. docs/audit.md has a shell verifier.
//
// # What the chain proves, and what it cannot
//
// Editing, deleting, reordering or inserting a line breaks the chain at
// that point, unless the attacker rewrites every later line too; anyone who
// can write the file can do that, so the chain alone proves only internal
// consistency. What makes rewriting detectable is the head: the hash of the
// last entry, which [Verify] reports. An operator who records the head
// elsewhere (a ticket, another machine, a signed commit) can later pass it
// as [VerifyOptions].Head: Verify then fails if that entry is no longer in
// the chain. The same holds for removing whole lines from the end (or the
// whole file): the remaining prefix is a perfectly valid chain, so tail
// truncation is only detectable against a previously recorded head.
//
// # Writers
//
// Several processes may append to the same file at once (the server and
// `bulwark admin …` commands). Each [Log] writes batches under an exclusive
// flock on the file: it reads the last line (seeking from the end) to learn
// the previous seq and hash, appends, fsyncs, and unlocks. A [Log] assigns
// Seq, Prev and Hash itself; Record fills in a zero Time.
//
// Record never drops an event: when the buffer is full it blocks the
// caller until the writer catches up (counted in [Stats].Blocked). An audit
// trail that silently loses entries under load would be worse than a
// slower registry, and the buffer (64Ki events by default) is far larger
// than what a healthy disk needs.
package audit
