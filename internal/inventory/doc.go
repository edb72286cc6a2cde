// Package inventory records what runs where: every container bulwark run
// starts or stops on a host is reported (an Event) to the registry, which
// keeps the events and answers "what is running, on which host, from
// which digest" (impact queries for the scanner).
//
// The pieces:
//   - event.go: the report's wire form and its validation (the server's
//     input is untrusted: sizes, character sets, references and digests
//     are checked, and fields the server owns cannot be sent);
//   - store.go: Store, the events and the current state of every
//     (host, container) in their own SQLite file (DATA/inventory.db);
//   - handler.go: the HTTP API (/inventory/v1/…), which authenticates
//     through an Authenticator the server provides and decides who may
//     report and read what;
//   - client.go: the client bulwark run, bulwark stop and bulwark report
//     use.
//
// Who may do what (docs/runner.md, "Inventory"):
//   - report an event: an account (user or robot) that may pull the
//     image's repository: a host that can run an image must be able to
//     pull it, so its robot already has the grant. A robot bound to an
//     environment reports only for that environment. The reporter, the
//     time received and the remote address are the server's, never the
//     client's. A container that runs (last event: start) belongs to its
//     reporter: another account cannot stop or replace it (administrators
//     can).
//   - read: every account sees the containers whose repository it may
//     pull; administrators see everything.
package inventory
