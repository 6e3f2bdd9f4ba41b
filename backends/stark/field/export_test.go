package field

// ExtendBig exposes the one-FFT extension (the reference for Extend).
var ExtendBig = (*Domains).extendBig
