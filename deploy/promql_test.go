package deploy

import (
	"fmt"
	"strings"
	"unicode"
)

// selector is one vector selector of a PromQL expression: a metric name and
// its label matchers.
type selector struct {
	Name     string
	Matchers []matcher
}

type matcher struct {
	Label, Op, Value string
}

// promqlFunctions are the function names of PromQL (Prometheus 2.x and 3.x);
// an identifier followed by "(" must be one of these or an aggregation.
var promqlFunctions = setOf(
	"abs", "absent", "absent_over_time", "acos", "acosh", "asin", "asinh", "atan", "atanh",
	"avg_over_time", "ceil", "changes", "clamp", "clamp_max", "clamp_min", "cos", "cosh",
	"count_over_time", "day_of_month", "day_of_week", "day_of_year", "days_in_month", "deg",
	"delta", "deriv", "double_exponential_smoothing", "exp", "floor", "histogram_avg",
	"histogram_count", "histogram_fraction", "histogram_quantile", "histogram_stddev",
	"histogram_stdvar", "histogram_sum", "holt_winters", "hour", "idelta", "increase", "irate",
	"label_join", "label_replace", "last_over_time", "ln", "log10", "log2", "mad_over_time",
	"max_over_time", "min_over_time", "minute", "month", "pi", "predict_linear",
	"present_over_time", "quantile_over_time", "rad", "rate", "resets", "round", "scalar",
	"sgn", "sin", "sinh", "sort", "sort_by_label", "sort_by_label_desc", "sort_desc", "sqrt",
	"stddev_over_time", "stdvar_over_time", "sum_over_time", "tan", "tanh", "time",
	"timestamp", "vector", "year",
)

var promqlAggregations = setOf(
	"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
	"bottomk", "topk", "quantile", "limitk", "limit_ratio",
)

// promqlLabelListKeywords are followed by a parenthesised list of label
// names, which are not metrics.
var promqlLabelListKeywords = setOf("by", "without", "on", "ignoring", "group_left", "group_right")

var promqlKeywords = setOf("and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "start", "end")

func setOf(s ...string) map[string]bool {
	m := make(map[string]bool, len(s))
	for _, v := range s {
		m[v] = true
	}
	return m
}

// selectors extracts the vector selectors of a PromQL expression, which may
// hold Grafana variables ($datasource, ${tier}, $__rate_interval). It is a
// lexer, not a parser: it knows where metric names can stand (an identifier
// that is not a function, an aggregation, a keyword or inside a label list,
// a matcher block or a range) and fails on anything it does not recognise,
// so an expression it cannot read is an error, never a silent pass.
// promtool checks that the expressions are valid PromQL.
func selectors(expr string) ([]selector, error) {
	sels, _, err := parsePromQL(expr)
	return sels, err
}

// parsePromQL returns the selectors of expr and the label names of its
// by/without/on/ignoring/group_left/group_right lists.
func parsePromQL(expr string) ([]selector, []string, error) {
	var out []selector
	var grouping []string
	s := expr
	i := 0
	peek := func() byte {
		j := i
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		if j < len(s) {
			return s[j]
		}
		return 0
	}
	skipSpace := func() {
		for i < len(s) && isSpace(s[i]) {
			i++
		}
	}
	for i < len(s) {
		c := s[i]
		switch {
		case isSpace(c):
			i++
		case c == '#': // comment to end of line
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			_, n, err := readString(s[i:])
			if err != nil {
				return nil, nil, fmt.Errorf("%w in %q", err, expr)
			}
			i += n
		case c == '$':
			n := readVariable(s[i:])
			if n == 0 {
				return nil, nil, fmt.Errorf("bad variable at %d in %q", i, expr)
			}
			i += n
		case c == '[':
			j := strings.IndexByte(s[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("unclosed [ in %q", expr)
			}
			i += j + 1
		case c == '{': // a selector without a name: {__name__="x", ...}
			ms, n, err := readMatchers(s[i:])
			if err != nil {
				return nil, nil, fmt.Errorf("%w in %q", err, expr)
			}
			i += n
			sel := selector{Matchers: ms}
			for _, m := range ms {
				if m.Label == "__name__" && m.Op == "=" {
					sel.Name = m.Value
				}
			}
			if sel.Name == "" {
				return nil, nil, fmt.Errorf("selector without a metric name in %q", expr)
			}
			out = append(out, sel)
		case c >= '0' && c <= '9' || c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
			// numbers, durations (5m, 1h30m), hex, exponents
			for i < len(s) && (isIdentChar(s[i]) || s[i] == '.' || (s[i] == '+' || s[i] == '-') && (s[i-1] == 'e' || s[i-1] == 'E')) {
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdentChar(s[j]) {
				j++
			}
			id := s[i:j]
			i = j
			lower := strings.ToLower(id)
			switch {
			case promqlLabelListKeywords[lower]:
				if peek() == '(' {
					skipSpace()
					k := strings.IndexByte(s[i:], ')')
					if k < 0 {
						return nil, nil, fmt.Errorf("unclosed label list after %s in %q", id, expr)
					}
					for _, l := range strings.Split(s[i+1:i+k], ",") {
						if l = strings.TrimSpace(l); l != "" {
							grouping = append(grouping, l)
						}
					}
					i += k + 1
				}
			case promqlKeywords[lower]:
			case peek() == '(':
				if !promqlFunctions[id] && !promqlAggregations[lower] {
					return nil, nil, fmt.Errorf("unknown function %q in %q", id, expr)
				}
			case promqlAggregations[lower] && (strings.HasPrefix(strings.TrimSpace(s[i:]), "by") || strings.HasPrefix(strings.TrimSpace(s[i:]), "without")):
				// sum by (x) (...)
			default:
				sel := selector{Name: id}
				if peek() == '{' {
					skipSpace()
					ms, n, err := readMatchers(s[i:])
					if err != nil {
						return nil, nil, fmt.Errorf("%w in %q", err, expr)
					}
					i += n
					sel.Matchers = ms
				}
				out = append(out, sel)
			}
		case strings.ContainsRune("()+-*/%^=!<>,@:", rune(c)):
			i++
		default:
			return nil, nil, fmt.Errorf("unexpected %q at %d in %q", c, i, expr)
		}
	}
	return out, grouping, nil
}

// readMatchers reads `{label op "value", ...}` at the start of s.
func readMatchers(s string) ([]matcher, int, error) {
	var out []matcher
	i := 1
	for {
		for i < len(s) && (isSpace(s[i]) || s[i] == ',') {
			i++
		}
		if i >= len(s) {
			return nil, 0, fmt.Errorf("unclosed {")
		}
		if s[i] == '}' {
			return out, i + 1, nil
		}
		j := i
		for j < len(s) && isIdentChar(s[j]) {
			j++
		}
		if j == i {
			return nil, 0, fmt.Errorf("label name expected at %q", s[i:])
		}
		m := matcher{Label: s[i:j]}
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		for _, op := range []string{"=~", "!~", "!=", "="} {
			if strings.HasPrefix(s[j:], op) {
				m.Op = op
				j += len(op)
				break
			}
		}
		if m.Op == "" {
			return nil, 0, fmt.Errorf("matcher operator expected after %s", m.Label)
		}
		for j < len(s) && isSpace(s[j]) {
			j++
		}
		v, n, err := readString(s[j:])
		if err != nil {
			return nil, 0, err
		}
		m.Value = v
		out = append(out, m)
		i = j + n
	}
}

// readString reads a PromQL string literal at the start of s.
func readString(s string) (string, int, error) {
	if s == "" {
		return "", 0, fmt.Errorf("string expected")
	}
	q := s[0]
	if q != '"' && q != '\'' && q != '`' {
		return "", 0, fmt.Errorf("string expected at %q", s)
	}
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch {
		case s[i] == q:
			return b.String(), i + 1, nil
		case s[i] == '\\' && q != '`' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(s[i])
		}
	}
	return "", 0, fmt.Errorf("unterminated string")
}

// readVariable returns the length of a Grafana variable at the start of s:
// $name, ${name} or ${name:format}; 0 if there is none.
func readVariable(s string) int {
	if len(s) < 2 {
		return 0
	}
	if s[1] == '{' {
		if j := strings.IndexByte(s, '}'); j > 1 {
			return j + 1
		}
		return 0
	}
	j := 1
	for j < len(s) && isIdentChar(s[j]) && s[j] != ':' {
		j++
	}
	if j == 1 {
		return 0
	}
	return j
}

func isSpace(c byte) bool      { return unicode.IsSpace(rune(c)) }
func isIdentStart(c byte) bool { return c == '_' || c == ':' || unicode.IsLetter(rune(c)) }
func isIdentChar(c byte) bool  { return isIdentStart(c) || c >= '0' && c <= '9' }
