package gpu

import "time"

type options struct {
	eventWait      time.Duration
	retryWait      time.Duration
	ignoredXIDs    map[uint64]bool
	onHealthChange func(Device)
}

// Option configures a Manager.
type Option func(*options)

// WithEventWait sets how long one NVML event wait blocks; it bounds how long
// WatchHealth takes to notice its context was cancelled. Default 1 s.
func WithEventWait(d time.Duration) Option { return func(o *options) { o.eventWait = d } }

// WithRetryWait sets the pause after an unexpected NVML event error before
// the health loop tries again. Default 5 s.
func WithRetryWait(d time.Duration) Option { return func(o *options) { o.retryWait = d } }

// WithIgnoredXIDs replaces the set of XIDs that do not make a device
// unhealthy. The default is the application-level XIDs (13, 31, 43, 45, 68,
// 109): a faulting user kernel, not a failing GPU.
func WithIgnoredXIDs(xids ...uint64) Option {
	return func(o *options) {
		o.ignoredXIDs = map[uint64]bool{}
		for _, x := range xids {
			o.ignoredXIDs[x] = true
		}
	}
}

// WithHealthChange calls f (from the health loop's goroutine) each time a
// device turns unhealthy.
func WithHealthChange(f func(Device)) Option { return func(o *options) { o.onHealthChange = f } }
