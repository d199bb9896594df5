# syntax=docker/dockerfile:1
#
# The Ensemble node (cmd/node) as a static binary in a distroless image
# that runs as a non-root user. DEPLOYMENT.md, "Container image".
#
#   docker build -t ensemble-node .
#
# The golang tag follows go.mod's go directive (deploy's tests check it),
# and the build command is the one deploy's tests run.

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -o /out/node ./cmd/node
# The default configuration's bbolt file (data/ensemble.db) is relative to
# the working directory, which the non-root user must be able to write.
RUN mkdir -p /out/work/data

# Static: no libc, no shell; CA certificates (Discord is HTTPS), time zone
# data, and the user nonroot (65532).
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/node /usr/local/bin/ensemble-node
# The repository's cluster.yaml as it is: one node, the bbolt store, the
# admin server on the container's loopback only (127.0.0.1:9090), which is
# reachable from nowhere else. A deployment mounts its own configuration
# over it; deploy/compose and deploy/k8s set admin_addr 0.0.0.0:9090 so
# that probes and Prometheus reach /readyz, /healthz and /metrics, and
# explain why that is safe there.
COPY cluster.yaml /etc/ensemble/cluster.yaml
COPY --from=build --chown=65532:65532 /out/work /var/lib/ensemble
WORKDIR /var/lib/ensemble
USER 65532:65532
EXPOSE 9090 7000
ENTRYPOINT ["/usr/local/bin/ensemble-node"]
CMD ["--config", "/etc/ensemble/cluster.yaml"]
