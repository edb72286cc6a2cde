package policy

import (
	"reflect"
	"strings"
	"time"

	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
)

// Size caps for the uncounted fast path. An input whose every list and
// map has at most capList entries and whose every string has at most
// capString bytes (capShort for fields tagged policy:"short": names,
// tags, capabilities, protocols) is "small"; for small inputs, an
// expression whose
// estimated worst-case cost under these caps is within CostLimit cannot
// exceed it, so it runs without cost counting. Larger inputs, and
// expressions the estimate cannot bound (nested loops), are counted.
// The caps cover real images comfortably (a few dozen env entries,
// labels, history entries and vulnerabilities); beyond them decisions are
// still correct, only slower.
const (
	capList   = 128
	capString = 1024
	capShort  = 128 // a tag is at most 128 characters
)

// cappedSizes tells the CEL cost estimator the caps, per input path.
type cappedSizes struct{}

func (cappedSizes) EstimateSize(n cost.AstNode) *cost.SizeEstimate {
	t, short := schemaType(n.Path())
	if t == nil {
		return nil
	}
	switch {
	case t.Kind() == reflect.String && short:
		return &cost.SizeEstimate{Min: 0, Max: capShort}
	case t.Kind() == reflect.String:
		return &cost.SizeEstimate{Min: 0, Max: capString}
	case t.Kind() == reflect.Slice, t.Kind() == reflect.Map:
		return &cost.SizeEstimate{Min: 0, Max: capList}
	}
	return nil
}

// EstimateCallCost adds what the estimator does not know: an int written
// as a string has at most 20 characters (the conversion itself costs 1,
// as in the runtime tracker).
func (cappedSizes) EstimateCallCost(_, overload string, _ *cost.AstNode, _ []cost.AstNode) *cost.CallEstimate {
	if overload == overloads.IntToString {
		return cost.NewCallEstimate(cost.FixedCostEstimate(1), &cost.SizeEstimate{Min: 1, Max: 20})
	}
	return nil
}

// schemaType is the Go type at a cost-estimator path: a variable, then
// field names (JSON names), "@items", "@keys" or "@values". nil when the
// path leaves the input.
func schemaType(path []string) (t reflect.Type, short bool) {
	if len(path) == 0 {
		return nil, false
	}
	t, short = jsonField(reflect.TypeFor[Input](), path[0])
	for _, step := range path[1:] {
		if t == nil {
			return nil, false
		}
		switch {
		case step == "@items" && t.Kind() == reflect.Slice:
			t = t.Elem()
		case step == "@keys" && t.Kind() == reflect.Map:
			t = t.Key()
		case step == "@values" && t.Kind() == reflect.Map:
			t = t.Elem()
		case t.Kind() == reflect.Struct && t != reflect.TypeFor[time.Time]():
			t, short = jsonField(t, step)
		default:
			return nil, false
		}
	}
	return t, short
}

// jsonField finds a struct field by JSON name; short reports its
// policy:"short" tag.
func jsonField(t reflect.Type, name string) (reflect.Type, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name {
			return f.Type, f.Tag.Get("policy") == "short"
		}
	}
	return nil, false
}

// withinCaps reports whether every string, list and map in the input is
// within the caps. It is written out rather than reflected, for speed; a
// test walks Input by reflection to prove it misses no field.
func withinCaps(in *Input) bool {
	return shortOK(string(in.Action), in.Environment, in.Principal.Kind, in.Principal.Environment) && strsOK(in.Principal.Name) &&
		imageOK(&in.Image) && trustOK(&in.Trust) && approvalsOK(in.Approvals) && scanOK(&in.Scan) && runtimeOK(&in.Runtime)
}

func strsOK(ss ...string) bool {
	for _, s := range ss {
		if len(s) > capString {
			return false
		}
	}
	return true
}

func shortOK(ss ...string) bool {
	for _, s := range ss {
		if len(s) > capShort {
			return false
		}
	}
	return true
}

func listOK(ss []string) bool { return len(ss) <= capList && strsOK(ss...) }

func shortListOK(ss []string) bool { return len(ss) <= capList && shortOK(ss...) }

func imageOK(im *Image) bool {
	c := &im.Config
	if !strsOK(im.Repository, im.Digest, im.MediaType, im.ArtifactType, c.User, c.WorkingDir) ||
		!shortOK(im.Tag, c.StopSignal, c.OS, c.Architecture) ||
		!listOK(im.Tags) || !listOK(c.ExposedPorts) || !listOK(c.Env) || !listOK(c.Entrypoint) || !listOK(c.Cmd) ||
		len(c.Labels) > capList || len(c.History) > capList {
		return false
	}
	for k, v := range c.Labels {
		if !strsOK(k, v) {
			return false
		}
	}
	for i := range c.History {
		if !strsOK(c.History[i].CreatedBy, c.History[i].Comment) {
			return false
		}
	}
	return true
}

func trustOK(t *Trust) bool {
	if !strsOK(t.PolicyVersion, t.Requirement, t.Reason) || !shortOK(t.Environment) || !shortListOK(t.Satisfied) || len(t.Signatures) > capList {
		return false
	}
	for i := range t.Signatures {
		s := &t.Signatures[i]
		if !strsOK(s.Ref, s.Format, s.Signer, s.Authority, s.Why) {
			return false
		}
	}
	return true
}

func approvalsOK(as []Approval) bool {
	if len(as) > capList {
		return false
	}
	for i := range as {
		if !strsOK(as[i].Approver, as[i].Ref) || !shortOK(as[i].Environment, as[i].Authority) {
			return false
		}
	}
	return true
}

func scanOK(s *Scan) bool {
	if !strsOK(s.Scanner) || len(s.Vulnerabilities) > capList || len(s.Lint) > capList {
		return false
	}
	for i := range s.Lint {
		l := &s.Lint[i]
		if !shortOK(l.ID, l.Severity) || !strsOK(l.Message) {
			return false
		}
	}
	for i := range s.Vulnerabilities {
		v := &s.Vulnerabilities[i]
		if !strsOK(v.ID, v.Package, v.Version, v.FixedVersion) || !shortOK(v.Severity) {
			return false
		}
	}
	return true
}

func runtimeOK(r *Runtime) bool {
	if !strsOK(r.User) || !shortListOK(r.Capabilities) || !shortListOK(r.HostNamespaces) || !listOK(r.Egress) ||
		len(r.Mounts) > capList || len(r.PublishedPorts) > capList {
		return false
	}
	for i := range r.Mounts {
		if !shortOK(r.Mounts[i].Type) || !strsOK(r.Mounts[i].Source, r.Mounts[i].Destination) {
			return false
		}
	}
	for i := range r.PublishedPorts {
		if !shortOK(r.PublishedPorts[i].HostIP, r.PublishedPorts[i].Protocol) {
			return false
		}
	}
	return true
}
