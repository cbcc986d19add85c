package api

import (
	"encoding/json"
	"sync"

	"github.com/cloudhsm-local/cloudhsm-local/internal/cloudhsm"
)

// clusterCache keeps the encoded JSON of recently described clusters, keyed
// by id and valid for one Version of the cluster, so a page of unchanged
// clusters is answered by copying bytes. It is bounded: when full it starts
// over.
type clusterCache struct {
	mu      sync.RWMutex
	max     int
	entries map[string]cachedCluster
}

type cachedCluster struct {
	version uint64
	tenant  cloudhsm.Tenant
	json    []byte
}

func newClusterCache(max int) *clusterCache {
	return &clusterCache{max: max, entries: make(map[string]cachedCluster)}
}

// encode returns c's JSON, from the cache when c has not changed.
func (cc *clusterCache) encode(c *cloudhsm.Cluster) ([]byte, error) {
	cc.mu.RLock()
	e, ok := cc.entries[c.ID]
	cc.mu.RUnlock()
	if ok && e.version == c.Version && e.tenant == c.Tenant {
		return e.json, nil
	}
	b, err := json.Marshal(clusterToJSON(c))
	if err != nil {
		return nil, err
	}
	cc.mu.Lock()
	if len(cc.entries) >= cc.max {
		cc.entries = make(map[string]cachedCluster)
	}
	cc.entries[c.ID] = cachedCluster{version: c.Version, tenant: c.Tenant, json: b}
	cc.mu.Unlock()
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
