package cluster

import "sync/atomic"

// MailboxDepth counts the messages waiting in the mailboxes it is given
// to as protoactor mailbox middleware: a kind's activations on this
// member (actor.Unbounded(depth), actor.UnboundedLockfree(depth)).
// protoactor exports no mailbox length of its own. A message posted to a
// stopped activation still passes through its mailbox, so it is counted
// out too; one whose processing panics is not (panics stop activations,
// and are logged).
type MailboxDepth struct{ n atomic.Int64 }

// MailboxStarted implements actor.MailboxMiddleware.
func (d *MailboxDepth) MailboxStarted() {}

// MessagePosted implements actor.MailboxMiddleware.
func (d *MailboxDepth) MessagePosted(any) { d.n.Add(1) }

// MessageReceived implements actor.MailboxMiddleware.
func (d *MailboxDepth) MessageReceived(any) { d.n.Add(-1) }

// MailboxEmpty implements actor.MailboxMiddleware.
func (d *MailboxDepth) MailboxEmpty() {}

// Len is how many messages wait now.
func (d *MailboxDepth) Len() int64 { return d.n.Load() }
