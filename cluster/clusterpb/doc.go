// Package clusterpb holds the protobuf messages and generated typed grains
// (Guild, Session, Shard) of the Ensemble cluster, and the messages of the
// status actor each member runs (asked with an Ack, answering StatusReply:
// a named local actor reached over remote, not a grain). Regenerate with
// `make generate`; ensemble.proto says which rules keep mixed-version
// clusters working.
package clusterpb
