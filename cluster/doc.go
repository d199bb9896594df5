// Package cluster starts a node's protoactor cluster member: the actor
// system (logging into slog, metrics into the node's OTel MeterProvider),
// gRPC remote, disthash identity lookup and the membership provider chosen
// in cluster.yaml.
//
// Only the "single" provider is wired so far. It is our own: a one-member
// topology published at start, with no network discovery and no expiry, so
// a single node pays nothing for membership.
package cluster
