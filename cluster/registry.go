package cluster

import cmap "github.com/orcaman/concurrent-map"

// protoactor's process registry is 1024 concurrent maps of cmap.SHARD_COUNT
// (32) Go maps each: 32,768 maps, and every map an actor or future ever lands
// in keeps a 288-byte group for good, about 650 B per idle grain in a member
// of thousands (heap profile of 2,000 idle guild grains). The 1024 buckets
// already spread the locks, so one map each is enough.
//
// SHARD_COUNT is read by every cmap operation, so it is set here, at package
// init, before any actor system exists: a map made earlier (protoactor makes
// none at init) would still work, with its entries all in its first shard.
func init() { cmap.SHARD_COUNT = 1 }
