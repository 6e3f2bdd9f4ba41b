#!/usr/bin/env bash
# The project's test command (README.md; .ci/run calls it).
# Installs what the tests need when absent, then go vet and go test:
# -race on the coordinator, store and scheduler packages, plain on the rest.
set -euo pipefail
cd "$(dirname "$0")/.."

# need CMD PKG: install Debian package PKG when CMD is missing.
apt_updated=
need() {
  command -v "$1" >/dev/null 2>&1 && return 0
  echo "test.sh: $1 not found; installing Debian package $2" >&2
  local sudo=
  [ "$(id -u)" -eq 0 ] || sudo=sudo
  if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$2" >/dev/null
  command -v "$1" >/dev/null 2>&1 || { echo "test.sh: could not install $2" >&2; exit 1; }
}
need gcc gcc                    # cgo: -race and go-nvml need it
need redis-server redis-server  # redisstore tests start their own server
need b3sum b3sum                # independent BLAKE3 for the test-vector cross-check
need promtool prometheus        # checks deploy/ alert rules and scrape configs

export CGO_ENABLED=1
# The aggregate backend's tests need Groth16 keys for its smallest circuits;
# setup takes minutes, so they are cached between runs (and checked against
# the current circuits before use).
export POUW_AGGREGATE_TEST_KEYS="${POUW_AGGREGATE_TEST_KEYS:-$HOME/.cache/pouw-aggregate-test-keys}"
export CGO_CFLAGS="${CGO_CFLAGS:--Wno-deprecated-declarations}"

echo "== go vet"
go vet ./...
go vet -tags chaos ./chaos/...

echo "== staticcheck"
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 -tags chaos ./chaos/...

echo "== no-cgo build (CPU-only fallback of gpu/)"
CGO_ENABLED=0 go build ./...

echo "== test vectors against b3sum"
./scripts/crosscheck-jobids.sh
echo "== trace test vectors against b3sum"
./scripts/crosscheck-trace.sh

race_pkgs=$(go list ./coordinator/... ./scheduler/... 2>/dev/null || true)
all_pkgs=$(go list ./...)
if [ -n "$race_pkgs" ]; then
  other_pkgs=$(grep -vxF -f <(printf '%s\n' $race_pkgs) <<<"$all_pkgs" || true)
else
  other_pkgs=$all_pkgs
fi

status=0
if [ -n "$race_pkgs" ]; then
  echo "== go test -race (coordinator, store, scheduler)"
  go test -race -timeout 20m $race_pkgs || status=1
fi
if [ -n "$other_pkgs" ]; then
  echo "== go test"
  go test -timeout 20m $other_pkgs || status=1
fi
echo "== deploy end to end (real redis-server, pouw coordinator + farm, Prometheus with the rules)"
POUW_DEPLOY_E2E=1 go test -count=1 -run EndToEnd ./deploy || status=1
echo "== chaos scenario (redis primary + replica, 2 coordinators, 3 farms, seeded faults, invariant audit; ~2 min)"
go test -tags chaos -count=1 -timeout 8m -run 'TestChaosScenarioLosesNothing|TestCheck|TestCollected' ./chaos/... || status=1
exit $status
