// Package clusterpb holds the protobuf messages and generated typed grains
// (Guild, Session, Shard) of the Ensemble cluster. Regenerate with
// `make generate`; ensemble.proto says which rules keep mixed-version
// clusters working.
package clusterpb
