// Package air is the statement side of the STARK, as in Winterfell's air
// crate: the AIR interface (trace shape, transition constraints and their
// degrees, boundary assertions, auxiliary columns built from verifier
// challenges), the proof options and the conjectured security level they
// give. The VM's own AIR (docs/vm.md) lives in package vmair.
//
// It imports only field of this module; it knows nothing of the VM or of
// the trace package.
package air

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/pouwfarm/pouwfarm/backends/stark/field"
)

// Assertion pins a main-trace cell: trace[Column][Row] == Value.
type Assertion struct {
	Column, Row int
	Value       field.Base
}

// AuxAssertion pins an auxiliary (extension-field) cell.
type AuxAssertion struct {
	Column, Row int
	Value       field.Ext
}

// DivisorKind says on which rows a group of constraints must vanish, i.e.
// which polynomial divides them.
type DivisorKind uint8

const (
	// AllRows: every row, divisor x^n − 1.
	AllRows DivisorKind = iota
	// AllRowsExcept: every row but Group.Rows, divisor
	// (x^n − 1)/Π_{r ∈ Rows}(x − g^r). Transition constraints exclude at
	// least the last row.
	AllRowsExcept
	// OneRow: the single row Group.Rows[0], divisor x − g^r.
	OneRow
)

// Group is a set of constraints sharing a divisor.
type Group struct {
	Divisor DivisorKind
	Rows    []int
	// Degrees gives each constraint's degree in the trace columns (main
	// and auxiliary); constraints with no auxiliary cell and no challenge
	// belong in groups with Aux false, which the prover evaluates over the
	// base field.
	Degrees []int
	Aux     bool
}

// DivisorDegree is the degree of the group's divisor for n rows.
func (g Group) DivisorDegree(n int) int {
	switch g.Divisor {
	case AllRows:
		return n
	case AllRowsExcept:
		return n - len(g.Rows)
	}
	return 1
}

// AIR is an algebraic intermediate representation: the polynomial relation a
// trace must satisfy, as groups of constraints over a frame of two
// consecutive rows (cur, next = the row after, cyclically) plus single-cell
// assertions.
//
// Constraint evaluation comes twice, over the base field (the prover, over
// the low-degree extension) and over the extension field (the verifier, at
// the out-of-domain point); both must compute the same polynomials, which
// the tests check on random points.
type AIR interface {
	// TraceLength is the number of rows n, a power of two (1 allowed).
	TraceLength() int
	// MainWidth is the number of base-field columns of the main trace.
	MainWidth() int
	// AuxWidth is the number of extension-field columns built after the main
	// commitment from NumChallenges challenges; 0 for none.
	AuxWidth() int
	NumChallenges() int

	// Groups lists the constraint groups; fixed by the statement.
	Groups() []Group
	// Eval writes group g's constraints (a group with Aux false) at
	// (cur, next) to out.
	Eval(g int, cur, next []field.Base, out []field.Base)
	// EvalAux writes group g's constraints (Aux true), main cells in the
	// base field.
	EvalAux(g int, cur, next []field.Base, auxCur, auxNext, ch []field.Ext, out []field.Ext)
	// EvalExt writes any group's constraints with every cell in the
	// extension field (auxiliary slices empty when AuxWidth is 0).
	EvalExt(g int, cur, next, auxCur, auxNext, ch []field.Ext, out []field.Ext)

	// Assertions are single-cell main boundary constraints.
	Assertions() []Assertion
	// AuxAssertions are single-cell auxiliary boundary constraints; they may
	// depend on the challenges (e.g. a lookup sum the verifier computes).
	AuxAssertions(ch []field.Ext) []AuxAssertion

	// BuildAux computes the auxiliary columns (prover only).
	BuildAux(main [][]field.Base, ch []field.Ext) ([][]field.Ext, error)
}

// NumConstraints counts the group constraints (not the assertions).
func NumConstraints(a AIR) int {
	n := 0
	for _, g := range a.Groups() {
		n += len(g.Degrees)
	}
	return n
}

// MaxDegree returns the largest constraint degree of a (at least 1).
func MaxDegree(a AIR) int {
	d := 1
	for _, g := range a.Groups() {
		for _, x := range g.Degrees {
			d = max(d, x)
		}
	}
	return d
}

// CompositionWidth is the number k of extension columns the composition
// polynomial is split into: its degree is below
// max(n−1, max over constraints of d·(n−1) − deg(divisor) + 1), and each
// column has degree < n.
func CompositionWidth(a AIR) int {
	n := a.TraceLength()
	bound := n - 1
	for _, g := range a.Groups() {
		for _, d := range g.Degrees {
			bound = max(bound, d*(n-1)-g.DivisorDegree(n)+1)
		}
	}
	return max(1, (bound+n-1)/n)
}

// ErrOptions marks proof options outside the allowed ranges.
var ErrOptions = errors.New("invalid proof options")

// Options are the proof options; they are validated, carried in the proof and
// hashed into the transcript.
type Options struct {
	Blowup         int // LDE blowup factor: 4, 8 or 16
	Queries        int // FRI queries, 1..255
	GrindingBits   int // proof-of-work before query sampling, 0..32
	Folding        int // FRI folding factor: 4 or 8
	FieldExtension int // degree of the challenge field: 2 (the only one)
	MaxRemainder   int // most FRI remainder coefficients: power of two, Folding..256
}

// DefaultOptions: blowup 8, 28 queries, 17 grinding bits, folding 4 — 100
// bits of conjectured security (28·3 + 17 − 1) for traces up to 2^24 rows.
func DefaultOptions() Options {
	return Options{Blowup: 8, Queries: 28, GrindingBits: 17, Folding: 4, FieldExtension: 2, MaxRemainder: 64}
}

// Validate checks every option is in range.
func (o Options) Validate() error {
	pow2 := func(x int) bool { return x > 0 && x&(x-1) == 0 }
	switch {
	case o.Blowup != 4 && o.Blowup != 8 && o.Blowup != 16:
		return fmt.Errorf("%w: blowup %d (want 4, 8 or 16)", ErrOptions, o.Blowup)
	case o.Queries < 1 || o.Queries > 255:
		return fmt.Errorf("%w: %d queries (want 1..255)", ErrOptions, o.Queries)
	case o.GrindingBits < 0 || o.GrindingBits > 32:
		return fmt.Errorf("%w: %d grinding bits (want 0..32)", ErrOptions, o.GrindingBits)
	case o.Folding != 4 && o.Folding != 8:
		return fmt.Errorf("%w: folding factor %d (want 4 or 8)", ErrOptions, o.Folding)
	case o.FieldExtension != 2:
		return fmt.Errorf("%w: field extension degree %d (want 2)", ErrOptions, o.FieldExtension)
	case !pow2(o.MaxRemainder) || o.MaxRemainder < o.Folding || o.MaxRemainder > 256:
		return fmt.Errorf("%w: remainder size %d (want a power of two in %d..256)", ErrOptions, o.MaxRemainder, o.Folding)
	}
	return nil
}

// OptionsBytes is the size of the options' encoding.
const OptionsBytes = 6

// Encode returns the 6-byte encoding: blowup, queries, grinding bits,
// folding, field extension, log2(max remainder).
func (o Options) Encode() []byte {
	return []byte{byte(o.Blowup), byte(o.Queries), byte(o.GrindingBits), byte(o.Folding),
		byte(o.FieldExtension), byte(bits.TrailingZeros(uint(o.MaxRemainder)))}
}

// DecodeOptions parses and validates 6 bytes of options.
func DecodeOptions(b []byte) (Options, error) {
	if len(b) < OptionsBytes || b[5] > 16 {
		return Options{}, fmt.Errorf("%w: malformed", ErrOptions)
	}
	o := Options{Blowup: int(b[0]), Queries: int(b[1]), GrindingBits: int(b[2]), Folding: int(b[3]),
		FieldExtension: int(b[4]), MaxRemainder: 1 << b[5]}
	return o, o.Validate()
}

// Field and hash parameters of the security estimate.
const (
	BaseFieldBits       = 64  // Goldilocks
	CollisionResistance = 128 // BLAKE3-256
	grindingFloor       = 80  // grinding counts only once queries give this much
)

// ConjecturedSecurity is the conjectured security level in bits of a proof
// with these options for a trace of n rows, as Winterfell computes it:
//
//	field = 64·ext − log2(n·blowup)
//	query = queries·log2(blowup) (+ grinding bits when that is ≥ 80)
//	security = min(min(field, query) − 1, 128)
func (o Options) ConjecturedSecurity(n int) int {
	lde := bits.Len(uint(n*o.Blowup)) - 1
	fieldSec := BaseFieldBits*o.FieldExtension - lde
	query := o.Queries * (bits.Len(uint(o.Blowup)) - 1)
	if query >= grindingFloor {
		query += o.GrindingBits
	}
	return min(min(fieldSec, query)-1, CollisionResistance)
}
