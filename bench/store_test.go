package bench

import (
	"crypto/rand"
	"encoding/base32"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// BenchmarkBoltGroupCommit measures the embedded store alone: groups of one
// 1,100-byte record (the size of a cluster record) under a random key, as
// CreateCluster submits them, from 32 concurrent writers that each wait for
// durability, as the handlers do. It separates the store's commit cycle
// (bbolt's page writes and fsyncs) from the rest of the write path.
func BenchmarkBoltGroupCommit(b *testing.B) {
	st, err := store.OpenBolt(filepath.Join(b.TempDir(), "state.db"), store.BoltOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	value := []byte(strings.Repeat("x", 1100))
	key := func() string {
		var r [7]byte
		_, _ = rand.Read(r[:])
		return "555555555555/us-east-1/cluster-" + strings.ToLower(base32.StdEncoding.EncodeToString(r[:]))[:11]
	}
	b.ResetTimer()
	var wg sync.WaitGroup
	work := make(chan struct{}, b.N)
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				if err := st.Submit([]store.Mutation{{Kind: "cluster", Key: key(), Value: value}})(); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
}
