# syntax=docker/dockerfile:1
# lockproxy's image: a static binary on an empty base, run as a non-root user.
# Build: docker build -t lockproxy --build-arg VERSION=$(git describe --always) .

# The builder is pinned to the Go release go.mod names.
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# Static (no libc), reproducible paths, no symbol table: it runs on scratch.
# The version goes into the binary too (lockproxy -version,
# lockproxy_build_info): .git is not copied in, so Go records none itself.
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -buildid= -X github.com/lockproxy/lockproxy/internal/sidecar.version=${VERSION}" -o /out/lockproxy ./cmd/lockproxy

# scratch has nothing to patch or pin: only the binary and CA roots (for
# rediss:// upstreams) go in.
FROM scratch
ARG VERSION=dev
LABEL org.opencontainers.image.title="lockproxy" \
      org.opencontainers.image.description="Distributed locks for any Redis client: a sidecar speaking RESP, backed by Redis" \
      org.opencontainers.image.source="https://github.com/lockproxy/lockproxy" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/lockproxy /lockproxy
# Only inside the image does it listen on every interface: a container's
# network is its own. The binary's default stays 127.0.0.1.
ENV LOCKPROXY_LISTEN=0.0.0.0:6380 \
    LOCKPROXY_METRICS_LISTEN=0.0.0.0:9180 \
    LOCKPROXY_LOG_FORMAT=json
EXPOSE 6380 9180
# A numeric uid: scratch has no /etc/passwd, and Kubernetes' runAsNonRoot
# can only verify a numeric user.
USER 65532:65532
ENTRYPOINT ["/lockproxy"]
