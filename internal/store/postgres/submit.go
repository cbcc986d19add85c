package postgres

import (
	"context"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// Limits of one commit of Submit's groups (those of the embedded store).
const (
	maxBatchGroups = 1000
	maxBatchBytes  = 4 << 20
)

// committer commits Submit's groups: one goroutine takes every group
// queued so far (within the limits above) and commits them in Submit
// order as one version, in one transaction and one round trip; the waits
// of the groups return when it is durable (group commit).
//
// A failed commit fails its groups and every group queued behind it at
// that moment (they were built on top of the lost ones); groups submitted
// after the failure was reported commit normally, once the database
// answers again. A caller that built them on its own copy of the estate
// must rebuild that copy (Shared's callers do: Refresh).
type committer struct {
	s       *Store
	mu      sync.Mutex
	cond    sync.Cond
	queue   []*pending
	closing bool
	done    chan struct{}
}

// pending is one submitted group.
type pending struct {
	muts []store.Mutation
	size int
	done chan struct{}
	err  error
}

func (c *committer) init(s *Store) {
	c.s = s
	c.cond.L = &c.mu
	c.done = make(chan struct{})
	go c.run()
}

// Submit validates and copies muts and queues them as one group; the
// returned wait blocks until the group is committed (durably: PostgreSQL
// flushes its WAL at commit). After Close, wait yields store.ErrClosed.
func (s *Store) Submit(muts []store.Mutation) (wait func() error) {
	if err := validate(muts); err != nil {
		return store.Failed(err)
	}
	muts, size := store.CloneMutations(muts)
	p := &pending{muts: muts, size: size, done: make(chan struct{})}
	c := &s.committer
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return store.Failed(fmt.Errorf("postgres: submit: %w", store.ErrClosed))
	}
	c.queue = append(c.queue, p)
	c.cond.Signal()
	c.mu.Unlock()
	return func() error {
		<-p.done
		return p.err
	}
}

// close stops taking groups, waits until every queued group is committed
// (or failed), and stops the committer.
func (c *committer) close() error {
	c.mu.Lock()
	c.closing = true
	c.cond.Signal()
	c.mu.Unlock()
	<-c.done
	return nil
}

func (c *committer) run() {
	defer close(c.done)
	for {
		groups, ok := c.next()
		if !ok {
			return
		}
		err := c.commit(groups)
		if err != nil {
			// The groups queued behind the failed ones fail with them.
			c.mu.Lock()
			behind := c.queue
			c.queue = nil
			c.mu.Unlock()
			for _, p := range behind {
				p.err = fmt.Errorf("postgres: a commit queued before this group failed: %w", err)
				close(p.done)
			}
		}
		for _, p := range groups {
			p.err = err
			close(p.done)
		}
	}
}

// next blocks until groups are queued and takes the oldest, as many as fit
// in one commit; ok is false once closing and drained.
func (c *committer) next() (groups []*pending, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) == 0 && !c.closing {
		c.cond.Wait()
	}
	if len(c.queue) == 0 {
		return nil, false
	}
	n, size := 0, 0
	for n < len(c.queue) && n < maxBatchGroups {
		if n > 0 && size+c.queue[n].size > maxBatchBytes {
			break
		}
		size += c.queue[n].size
		n++
	}
	groups = append([]*pending(nil), c.queue[:n]...)
	rest := copy(c.queue, c.queue[n:])
	clear(c.queue[rest:])
	c.queue = c.queue[:rest]
	return groups, true
}

// commit writes groups, in order, as one new version: one implicit
// transaction (the statements of one pipeline), committed at its end.
func (c *committer) commit(groups []*pending) error {
	b := &batch{}
	seen := map[[2]string]int{}
	for _, p := range groups {
		b.add(p.muts, seen)
	}
	b.split()
	if b.empty() {
		return nil // only barriers, or nothing: nothing to write
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.s.opts.Timeout)
	defer cancel()
	conn, err := c.s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: commit %d groups: %w", len(groups), err)
	}
	defer conn.Release()
	q := &pgx.Batch{}
	q.Queue(qBump)
	queueWrites(q, b)
	if _, err := readBatch(conn.SendBatch(ctx, q), q.Len(), true); err != nil {
		return fmt.Errorf("postgres: commit %d groups: %w", len(groups), commitErr(err))
	}
	return nil
}
