//! Benchmark suite.
