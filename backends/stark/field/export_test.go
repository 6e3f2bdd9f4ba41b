package field

// ExtendBig exposes the one-FFT extension (the reference for Extend).
var ExtendBig = (*Domains).extendBig

// MulRaw exposes the Goldilocks-specific reduction.
var MulRaw = mulRaw
