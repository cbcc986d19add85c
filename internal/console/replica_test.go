package console_test

import (
	"bufio"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cloudhsm-local/cloudhsm-local/internal/clock"
	"github.com/cloudhsm-local/cloudhsm-local/internal/server"
	"github.com/cloudhsm-local/cloudhsm-local/internal/store"
)

// TestLiveUpdatesFromAnotherReplica: a console open on one replica of a
// shared estate hears of a cluster created through another replica, within
// a second, with no request made to its own replica.
func TestLiveUpdatesFromAnotherReplica(t *testing.T) {
	db := store.NewSharedMemory(nil)
	a := newEnv(t, server.Config{Store: db.Open(), Clock: clock.New()})
	b := newEnv(t, server.Config{Store: db.Open(), Clock: clock.New()})
	resp, err := http.Get(b.url("events?page=estate"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
				events <- name
			}
		}
		close(events)
	}()
	select {
	case ev := <-events:
		if ev != "hello" {
			t.Fatalf("first event %q, want hello", ev)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no hello from the stream")
	}
	createCluster(t, a.sdk(acctA, "us-east-1"))
	sent := time.Now()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the stream ended")
		}
		t.Logf("event %q on replica b %v after the create on replica a", ev, time.Since(sent).Round(time.Millisecond))
		if d := time.Since(sent); d > time.Second {
			t.Errorf("the change reached the other replica's console after %v, want within 1s", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("a cluster created on replica a never reached the console of replica b")
	}
}
