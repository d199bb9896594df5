// Package supervisor holds Ensemble's supervision policies: the circuit
// breaker that decides whether a Lavalink node may take traffic, the
// protoactor SupervisorStrategy that applies it to node actors, and a
// jittered exponential backoff.
//
// protoactor's own "exponential" backoff is linear with nanoseconds of
// jitter and never gives up, so Backoff is ours, and every
// retry of the project waits by it (cluster.Call's included, which is why
// this package imports nothing of the project). Breaker and Backoff are
// pure: time and randomness come in as arguments, so their table tests are
// exact and need no sleeping.
package supervisor
