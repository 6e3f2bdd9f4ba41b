package coordinator

import (
	"errors"
	"runtime"
	"runtime/debug"

	"github.com/prometheus/client_golang/prometheus"
)

// RegisterBuildInfo exports pouw_build_info{version,goversion} = 1 on reg,
// so a dashboard can tell which build each process runs. The farm
// (devnet) registers it too: this package is the one place both import.
// Registering it twice on one registry is not an error.
func RegisterBuildInfo(reg prometheus.Registerer) error {
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "pouw_build_info",
		Help:        "Always 1; the labels say which pouw build and Go release this process runs.",
		ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
	})
	g.Set(1)
	if err := reg.Register(g); err != nil {
		if are := (prometheus.AlreadyRegisteredError{}); errors.As(err, &are) {
			return nil
		}
		return err
	}
	return nil
}
