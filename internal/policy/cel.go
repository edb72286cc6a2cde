package policy

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
	"cel.dev/cel-go/interpreter"
	"go.yaml.in/yaml/v3"
	exprpb "google.golang.org/genproto/googleapis/api/expr/v1alpha1"
	"google.golang.org/protobuf/proto"
)

// CostLimit bounds one evaluation of one rule expression (and, separately,
// of its message expression), in CEL cost units (roughly one per
// operation, one per list element visited). Normal rules cost tens of
// units; the limit stops comprehensions over hostile inputs (an image with
// 100,000 env entries, a nested loop) in well under a millisecond. An
// expression that exceeds it is a rule error, which counts as a
// violation.
const CostLimit = 100_000

// MaxExpressionLength bounds one CEL expression's source.
const MaxExpressionLength = 16 << 10

// The typing choice: the input is declared as Go structs registered with
// ext.NativeTypes, with field names taken from their json tags. So the
// type checker knows every field of every object (image.config.usr is a
// compile error, "undefined field 'usr'"), the CEL schema is exactly the
// Input's JSON form (one name for both, documented once), and evaluation
// reads the caller's structs in place through field offsets, with no
// per-decision conversion to maps. Protobuf message types would give the
// same checking at the cost of generated code; a map(string, dyn)
// declaration would give none.

// variables are the CEL variables, each one Input field.
var variables = []struct {
	name string
	typ  *cel.Type
}{
	{"action", cel.StringType},
	{"environment", cel.StringType},
	{"principal", cel.ObjectType("policy.Principal")},
	{"now", cel.TimestampType},
	{"image", cel.ObjectType("policy.Image")},
	{"trust", cel.ObjectType("policy.Trust")},
	{"approvals", cel.ListType(cel.ObjectType("policy.Approval"))},
	{"scan", cel.ObjectType("policy.Scan")},
	{"runtime", cel.ObjectType("policy.Runtime")},
}

// compiler holds the CEL environment and the built-in rules. Both are
// the same for every policy, so they are built once per process
// (sharedCompiler) instead of per load: building the environment reflects
// over the input types and dominates a small policy's load time.
//
// A built-in's programs (with its default parameters) are compiled on
// their first evaluation, not here: parsing and checking CEL costs
// 0.3-3 ms per expression, the library holds twenty-odd, and a policy
// typically binds a handful, whose message expressions run only when they
// fail. A built-in with parameters is compiled when the policy binding it
// is loaded (its parameters are user input: errors belong to the load).
// Built-ins are fixed Go code, so a lazy compilation cannot fail in use
// unless the library itself is broken (TestBuiltinsDocumented compiles
// all of them); if it did, the evaluation error counts as a violation.
type compiler struct {
	env      *cel.Env
	builtins map[string]*Rule
}

var sharedCompiler = sync.OnceValues(newCompiler)

func newCompiler() (*compiler, error) {
	opts := []cel.EnvOption{
		ext.NativeTypes(reflect.TypeFor[Input](), ext.ParseStructTag("json")),
		ext.Strings(),
		ext.Lists(),
		ext.Sets(),
		ext.Bindings(),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.ParserExpressionSizeLimit(MaxExpressionLength),
	}
	for _, v := range variables {
		opts = append(opts, cel.Variable(v.name, v.typ))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("policy: CEL environment: %w", err)
	}
	c := &compiler{env: env, builtins: map[string]*Rule{}}
	for _, def := range builtinDefs {
		r := def.rule()
		r.check = c.lazyCheck(r, def.fields)
		c.builtins[r.ID] = r
	}
	return c, nil
}

// lazyCheck is r's check with programs compiled on first use. fields are
// the input paths its expressions read (Explain shows them for any
// decision, so they cannot wait for a compilation that a passing rule's
// message expression never gets).
func (c *compiler) lazyCheck(r *Rule, fields []string) *check {
	ck := &check{rule: r, expression: r.Expression, fields: fields}
	ck.prog.lazy = &lazyProgram{compile: func() (program, error) {
		ast, err := c.compile(r.ID, "expression", r.Expression, cel.BoolType, nil)
		if err != nil {
			return program{}, fmt.Errorf("built-in %s: %w", r.ID, err)
		}
		return c.program(ast)
	}}
	if r.MessageExpression != "" {
		ck.msg = &program{lazy: &lazyProgram{compile: func() (program, error) {
			ast, err := c.compile(r.ID, "message_expression", r.MessageExpression, cel.StringType, nil)
			if err != nil {
				return program{}, fmt.Errorf("built-in %s: %w", r.ID, err)
			}
			return c.program(ast)
		}}}
	}
	return ck
}

// check is one compiled rule instance: a rule with its parameters.
type check struct {
	rule       *Rule
	expression string
	params     map[string]string // as given in the binding; nil for defaults
	prog       program
	msg        *program // nil without a message expression
	fields     []string // input paths the expressions read, for Explain
}

// program is one compiled expression, twice: tracked counts the cost of
// every operation and stops at CostLimit; fast does not count, and is
// set only when the cost estimator proves the expression stays under
// CostLimit for every input within the size caps (see withinCaps).
// Counting allocates on every operation, so the proof halves a typical
// decision's time while keeping the limit's guarantee.
type program struct {
	tracked cel.Program
	fast    cel.Program
	// lazy, when set, fills tracked and fast on first use (ready).
	lazy *lazyProgram
}

// lazyProgram compiles a program once, on first use, for every goroutine
// that uses it: the sync.Once orders the writes of tracked and fast
// before their reads.
type lazyProgram struct {
	once    sync.Once
	compile func() (program, error)
	err     error
}

// ready compiles a lazy program if it has not been yet.
func (p *program) ready() error {
	if p.lazy == nil {
		return nil
	}
	p.lazy.once.Do(func() {
		q, err := p.lazy.compile()
		p.tracked, p.fast, p.lazy.err = q.tracked, q.fast, err
	})
	return p.lazy.err
}

func (p *program) pick(small bool) (cel.Program, error) {
	if err := p.ready(); err != nil {
		return nil, err
	}
	if small && p.fast != nil {
		return p.fast, nil
	}
	return p.tracked, nil
}

// compileRule compiles a rule's expression and message expression; exprNode
// and msgNode (nil for built-ins) locate errors in the file.
func (c *compiler) compileRule(r *Rule, expr, msgExpr string, params map[string]string, exprNode, msgNode *yaml.Node) (*check, error) {
	ck := &check{rule: r, expression: expr, params: params}
	ast, err := c.compile(r.ID, "expression", expr, cel.BoolType, exprNode)
	if err != nil {
		return nil, err
	}
	if ck.prog, err = c.program(ast); err != nil {
		return nil, &PolicyError{Line: line(exprNode, 1), Rule: r.ID, Err: fmt.Errorf("expression: %w", err)}
	}
	ck.fields = inputPaths(ast.NativeRep().Expr(), nil)
	if msgExpr != "" {
		mast, err := c.compile(r.ID, "message_expression", msgExpr, cel.StringType, msgNode)
		if err != nil {
			return nil, err
		}
		mp, err := c.program(mast)
		if err != nil {
			return nil, &PolicyError{Line: line(msgNode, 1), Rule: r.ID, Err: fmt.Errorf("message_expression: %w", err)}
		}
		ck.msg = &mp
		ck.fields = inputPaths(mast.NativeRep().Expr(), ck.fields)
	}
	slices.Sort(ck.fields)
	ck.fields = slices.Compact(ck.fields)
	ck.fields = slices.DeleteFunc(ck.fields, func(p string) bool {
		// Keep the deepest paths: "image.config" is implied by
		// "image.config.user".
		return slices.ContainsFunc(ck.fields, func(q string) bool { return strings.HasPrefix(q, p+".") })
	})
	return ck, nil
}

func (c *compiler) compile(rule, what, src string, want *cel.Type, n *yaml.Node) (*cel.Ast, error) {
	if len(src) > MaxExpressionLength {
		return nil, &PolicyError{Line: line(n, 1), Rule: rule, Err: fmt.Errorf("%s is longer than %d bytes", what, MaxExpressionLength)}
	}
	ast, iss := c.parse(src, what)
	if iss == nil || iss.Err() == nil {
		ast, iss = c.env.Check(ast)
	}
	if iss != nil && iss.Err() != nil {
		l := 1
		if errs := iss.Errors(); len(errs) > 0 && errs[0].Location != nil && errs[0].Location.Line() > 0 {
			l = errs[0].Location.Line()
		}
		return nil, &PolicyError{Line: line(n, l), Rule: rule, Err: errors.New(strings.TrimPrefix(iss.Err().Error(), "ERROR: "))}
	}
	if !ast.OutputType().IsExactType(want) {
		return nil, &PolicyError{Line: line(n, 1), Rule: rule,
			Err: fmt.Errorf("%s must evaluate to %s, but evaluates to %s", what, cel.FormatCELType(want), cel.FormatCELType(ast.OutputType()))}
	}
	// Refuse what can never run: the cheapest possible evaluation (every
	// input list empty) already exceeds the limit.
	est, err := c.env.EstimateCost(ast, noSizes{})
	if err == nil && est.Min > CostLimit {
		return nil, &PolicyError{Line: line(n, 1), Rule: rule,
			Err: fmt.Errorf("%s always exceeds the evaluation cost limit: it costs at least %d, the limit is %d", what, est.Min, CostLimit)}
	}
	return ast, nil
}

// parse parses src. The built-ins' default expressions are parsed ahead
// of time (builtinASTs, keyed by the source's hash, so any other text is
// parsed here): cel-go's parser costs 0.5-5 ms per expression in a fresh
// process, most of what a one-shot decision such as bulwark run's costs.
func (c *compiler) parse(src, what string) (*cel.Ast, *cel.Issues) {
	if ast := parsedBuiltin(src); ast != nil {
		return ast, nil
	}
	return c.env.ParseSource(common.NewStringSource(src, what))
}

// parsedBuiltin is src's parsed form from builtinASTs, or nil.
func parsedBuiltin(src string) *cel.Ast {
	sum := sha256.Sum256([]byte(src))
	enc, ok := builtinASTs[hex.EncodeToString(sum[:])]
	if !ok {
		return nil
	}
	b, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		return nil
	}
	var pe exprpb.ParsedExpr
	if proto.Unmarshal(b, &pe) != nil {
		return nil
	}
	return cel.ParsedExprToAst(&pe)
}

func (c *compiler) program(ast *cel.Ast) (program, error) {
	var p program
	var err error
	p.tracked, err = c.env.Program(ast, cel.CostLimit(CostLimit), cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return p, err
	}
	if est, err := c.env.EstimateCost(ast, cappedSizes{}); err == nil && est.Max <= CostLimit {
		if p.fast, err = c.env.Program(ast, cel.EvalOptions(cel.OptOptimize)); err != nil {
			return p, err
		}
	}
	return p, nil
}

// line maps line l (1-based) of an expression to the file: block scalars
// ("|", ">") start on the line after their indicator.
func line(n *yaml.Node, l int) int {
	if n == nil {
		return 0
	}
	if n.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return n.Line + l
	}
	return n.Line + l - 1
}

// noSizes leaves every size unknown, so the estimate's minimum is the cost
// with empty inputs.
type noSizes struct{}

func (noSizes) EstimateSize(cost.AstNode) *cost.SizeEstimate { return nil }
func (noSizes) EstimateCallCost(string, string, *cost.AstNode, []cost.AstNode) *cost.CallEstimate {
	return nil
}

// inputPaths appends the input field paths (image.config.user) that e
// selects, for explanations.
func inputPaths(e celast.Expr, out []string) []string {
	celast.PreOrderVisit(e, celast.NewExprVisitor(func(e celast.Expr) {
		var parts []string
		for e.Kind() == celast.SelectKind {
			parts = append(parts, e.AsSelect().FieldName())
			e = e.AsSelect().Operand()
		}
		if e.Kind() != celast.IdentKind || !isVariable(e.AsIdent()) {
			return
		}
		parts = append(parts, e.AsIdent())
		slices.Reverse(parts)
		out = append(out, strings.Join(parts, "."))
	}))
	return out
}

func isVariable(name string) bool {
	for _, v := range variables {
		if v.name == name {
			return true
		}
	}
	return false
}

// activation resolves the CEL variables to one Input, which it holds (one
// allocation per decision for the input and the activation together).
// The scalar values are converted once per decision, not once per rule;
// the structs are read in place.
type activation struct {
	in          Input
	action      ref.Val
	environment ref.Val
	now         ref.Val
	approvals   any
	small       bool // withinCaps(in): the fast programs may run
}

func newActivation(in *Input) *activation {
	a := &activation{in: *in}
	a.action = types.String(in.Action)
	a.environment = types.String(in.Environment)
	a.now = types.Timestamp{Time: in.Now}
	a.approvals = in.Approvals
	a.small = withinCaps(in)
	return a
}

func (a *activation) ResolveName(name string) (any, bool) {
	switch name {
	case "action":
		return a.action, true
	case "environment":
		return a.environment, true
	case "principal":
		return &a.in.Principal, true
	case "now":
		return a.now, true
	case "image":
		return &a.in.Image, true
	case "trust":
		return &a.in.Trust, true
	case "approvals":
		return a.approvals, true
	case "scan":
		return &a.in.Scan, true
	case "runtime":
		return &a.in.Runtime, true
	}
	return nil, false
}

func (a *activation) Parent() interpreter.Activation { return nil }

// evalBool runs a rule expression. A non-bool result cannot happen (the
// type is checked at load) but is an error rather than a pass if it does.
func evalBool(p *program, a *activation) (bool, error) {
	prog, err := p.pick(a.small)
	if err != nil {
		return false, err
	}
	v, _, err := prog.Eval(a)
	if err != nil {
		return false, err
	}
	b, ok := v.(types.Bool)
	if !ok {
		return false, fmt.Errorf("expression returned %s, not bool", v.Type().TypeName())
	}
	return bool(b), nil
}

func evalString(p *program, a *activation) (string, error) {
	prog, err := p.pick(a.small)
	if err != nil {
		return "", err
	}
	v, _, err := prog.Eval(a)
	if err != nil {
		return "", err
	}
	s, ok := v.(types.String)
	if !ok {
		return "", fmt.Errorf("message expression returned %s, not string", v.Type().TypeName())
	}
	return string(s), nil
}
