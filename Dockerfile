# syntax=docker/dockerfile:1
# The pouw binary (coordinator, farm and the CLI) in a small non-root image.
#
#   docker build -t pouwfarm/pouw .
#   docker run --rm pouwfarm/pouw version
#
# Built with cgo: go-nvml loads libnvidia-ml.so at run time, which the NVIDIA
# container toolkit mounts into GPU containers (--gpus all, or the
# nvidia.com/gpu resource on Kubernetes). Without it the farm runs CPU-only
# and says so in one log line. The runtime image has glibc for that, and
# nothing else: no shell, no package manager.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first, so a source change does not re-download them.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=1 CGO_CFLAGS=-Wno-deprecated-declarations \
    go build -trimpath -ldflags "-s -w" -o /out/pouw ./cmd/pouw

FROM gcr.io/distroless/base-debian12:nonroot
COPY --from=build /out/pouw /usr/local/bin/pouw
# distroless' nonroot user (65532:65532). The data dir is for the embedded
# bolt store and file blobs; mount a volume there.
USER 65532:65532
WORKDIR /var/lib/pouw
VOLUME ["/var/lib/pouw"]
# 8080: coordinator API and /metrics; 9101: farm metrics.
EXPOSE 8080 9101
ENTRYPOINT ["/usr/local/bin/pouw"]
CMD ["--help"]
