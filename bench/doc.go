// Package bench holds the benchmarks of cloudhsm-local: the chlbench load
// generator (cmd/chlbench), which measures a built binary as a subprocess
// against the targets of the project, and Go benchmarks that drive the
// in-process server of the public cloudhsmlocal package (start-up cost and
// the DescribeClusters read path, for pprof). See README.md.
//
// Speed figures are measured and reported here, never asserted in tests:
// the smoke test only checks that every scenario runs without error.
package bench
