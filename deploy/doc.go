// Package deploy holds what operators run pouwfarm with, and the tests that
// keep it honest: Grafana dashboards and provisioning (grafana/), the
// Prometheus scrape configs, alert rules and their promtool unit tests
// (prometheus/), systemd units (systemd/), Kubernetes manifests (k8s/) and a
// compose stack (compose/); docs/operations.md explains them.
//
// The package has no code of its own. Its tests check the files with the
// real tools where they exist (promtool, systemd-analyze, docker compose),
// parse them otherwise, and tie them to the code: every metric a dashboard
// or rule reads must be exported by the coordinator (coordinator/api), the
// farm (scheduler/agent) or the GPU collector (gpu), gathered from registries
// built the way those packages build them; every flag a unit or manifest
// passes must be one `pouw` accepts. So a renamed metric or flag fails
// `go test`, not a dashboard at 3 a.m.
//
// Only its tests import the module's packages (coordinator, devnet's farm,
// gpu, scheduler/agent), to run what they check against; nothing may import
// deploy.
package deploy
