// Package cluster starts a node's protoactor cluster member: the actor
// system (logging into slog, metrics into the node's OTel MeterProvider),
// gRPC remote, the identity lookup and the membership provider chosen in
// cluster.yaml.
//
// The identity lookup (lookup.go) places identities as protoactor's
// disthash does, rendezvous hashing over the members, and speaks its
// activation protocol, but keeps each activation small: one shared Props
// per kind, a name never reused, and passivation of idle activations by a
// member-wide sweep (Options.IdleTimeouts) instead of a timer each.
//
// Three providers are wired, all our own:
//   - "single": a one-member topology published at start, with no network
//     discovery and no expiry, so a single node pays nothing for
//     membership;
//   - "etcd": each member keeps a key under a lease (cluster.etcd_lease_ttl)
//     and follows the others' keys. Leaving revokes the lease, so the others
//     see it at once; a killed member is seen gone a TTL later. An etcd
//     outage ejects no one (the last membership stands); a member whose
//     lease or key etcd has dropped is told through Member.Ejected, since
//     the others now refuse its ID and only a new member can rejoin
//     (the membership itself is package cluster/membership);
//   - "automanaged": a fixed list of members (cluster.members), each
//     answering "who are you" on its own cluster.automanaged_addr; a member
//     silent for cluster.automanaged_refresh is dropped, and one that finds
//     itself dropped by another is told through Member.Ejected.
//
// Placement tells a member which identities it owns (the same rendezvous
// hashing) and when the membership changes, so each member keeps only its
// own shards and wakes only its own sessions.
//
// "k8s" is validated in configuration but refused at start
// (ErrProviderNotWired).
package cluster
