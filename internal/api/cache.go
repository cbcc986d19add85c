package api

import (
	"encoding/json"
	"sync"
	"sync/atomic"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// clusterCache keeps the encoded JSON of recently described clusters, keyed
// by id and valid for one Version of the cluster (a value the service never
// gives twice, even to a cluster re-imported with the same id), so a page of unchanged
// clusters is answered by copying bytes. It is bounded: when full it starts
// over. Lookups take no lock (sync.Map): a page looks up 25 clusters, and a
// read-write mutex's shared reader count, updated 50 times per page by
// every core, cost more than the lookups.
type clusterCache struct {
	max     int64
	size    atomic.Int64
	entries sync.Map // cluster id -> *cachedCluster
}

type cachedCluster struct {
	version uint64
	tenant  cloudhsm.Tenant
	json    []byte
}

func newClusterCache(max int) *clusterCache {
	return &clusterCache{max: int64(max)}
}

// encode returns c's JSON, from the cache when c has not changed.
func (cc *clusterCache) encode(c *cloudhsm.Cluster) ([]byte, error) {
	if v, ok := cc.entries.Load(c.ID); ok {
		if e := v.(*cachedCluster); e.version == c.Version && e.tenant == c.Tenant {
			return e.json, nil
		}
	}
	b, err := json.Marshal(clusterToJSON(c))
	if err != nil {
		return nil, err
	}
	if _, loaded := cc.entries.Swap(c.ID, &cachedCluster{version: c.Version, tenant: c.Tenant, json: b}); !loaded {
		if cc.size.Add(1) > cc.max {
			// Full: start over. Entries stored meanwhile may be dropped
			// too, which costs only their next encoding.
			cc.entries.Clear()
			cc.size.Store(0)
		}
	}
	return b, nil
}

// pagePool recycles the buffers DescribeClusters pages are built in (a
// 25-cluster page is about 17 KB; allocating one per request dominated the
// read path's garbage).
type pagePool struct{ p sync.Pool }

// pageBuf is one pooled buffer; it implements awsjson.PooledBody.
type pageBuf struct {
	b    []byte
	pool *pagePool
}

func (pp *pagePool) get() *pageBuf {
	if v, ok := pp.p.Get().(*pageBuf); ok {
		return v
	}
	return &pageBuf{b: make([]byte, 0, 32<<10), pool: pp}
}

// Bytes returns the page.
func (pb *pageBuf) Bytes() []byte { return pb.b }

// Release returns the buffer to its pool; very large buffers are dropped.
func (pb *pageBuf) Release() {
	if cap(pb.b) <= 1<<20 {
		pb.pool.p.Put(pb)
	}
}
