//! Criterion benches of Vigil's hot paths live in `benches/`; this library is empty.
//! Run them with `cargo bench -p vigil-benches`; results go to `BENCHMARKS.md`.
