// Package policy is bulwark's policy engine: CEL rules, bindings of rules
// to environments × repositories × actions with a mode (audit, warn,
// enforce), expiring exceptions, and Decide, which turns facts about an
// image and an action into an explained Decision. The registry calls it at
// push and pull, the runner at run, `bulwark policy check` for what-ifs.
// docs/policy.md is the user's guide: file format, input schema, built-in
// rules, decision semantics and JSON form.
//
// # Use
//
//	p, err := policy.Load("policy.yaml") // *PolicyError: file, line, rule, compiler message
//	d, err := p.Decide(ctx, policy.Input{Action: policy.ActionPull, Environment: "prod", Now: time.Now(), …})
//	if !d.Allowed { … d.Failed() … }
//
// A *Policy is immutable and safe for concurrent use: to reload, load a
// new one and swap the pointer. Everything that can fail is checked at
// load (YAML shape, every expression compiled and type-checked against
// the input schema, rule references, exception fields), so Decide does no
// parsing, no compilation and no I/O; its only errors are invalid input
// (ErrInvalidInput) and a cancelled context, and a caller must treat both
// as a denial.
//
// # Facts
//
// Callers gather facts and pass them in Input: the image configuration
// (ConfigFacts parses the config blob), the trust policy's decision
// (TrustFacts converts a trust.Decision), verified approvals, scan
// results, and for run the runtime request. Missing facts fail closed in
// the built-in rules.
//
// # Evaluation
//
// The input is declared to CEL as Go structs (ext.NativeTypes, field names
// from the json tags), so rules read the caller's structs in place. Every
// evaluation is bounded by CostLimit; an expression that errors or exceeds
// it makes its rule's result ResultError, a violation. Where CEL's cost
// estimator proves an expression stays within the limit for inputs under
// the size caps (caps.go), it runs without cost counting, which roughly
// halves a decision's time.
package policy
