// Package reliability holds cloudhsm-local's robustness tests: a corpus of
// hostile requests (testdata/hostile) sent to every operation, crash
// consistency of the durable store under SIGKILL, a time-bounded soak with
// invariant checks, and slow or vanishing clients against the real binary.
// It contains tests and their helpers only.
//
//	go test -race ./reliability/ -v -count=1
//	SOAK_SECONDS=60 RELIABILITY_SUMMARY=/tmp/soak.json go test -race ./reliability/ -run Soak -v
//	go test ./reliability/ -run TestHostileCorpusUpToDate -update-hostile   # regenerate the corpus
package reliability
