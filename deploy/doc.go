// Package deploy holds Ensemble's deployment artifacts (a Docker Compose
// file, Kubernetes manifests, a Lavalink configuration, Prometheus alert
// rules, an Alertmanager example, a Grafana dashboard) and the tests that
// keep them in step with the node: every node configuration in them, with
// the flags each member starts with, goes through internal/config's own
// loader and validation the way cmd/node applies them; every flag they pass
// is one cmd/node defines and every environment variable they give the node
// is one it reads; each member is advertised at an address the others reach
// (its Compose service name, its pod's status.podIP) on the port it listens
// on and the manifests open; probes point at the admin port the
// configuration serves; grace periods outlast node.shutdown_timeout; and
// the repository's Dockerfile builds a statically linked node.
// DEPLOYMENT.md is the guide to them.
//
// It has no Go code of its own: the package exists for its tests.
package deploy
