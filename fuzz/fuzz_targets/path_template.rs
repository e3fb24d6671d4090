//! The `path_template` fuzz target: libFuzzer feeds [`checks::check`] (in
//! `fuzz/checks/path_template.rs`, where its input and invariants are described).
//! The same check replays the checked-in corpus in the workspace's
//! `cargo test` (tests/fuzz_corpus.rs), so it cannot stop compiling unseen.
#![no_main]

#[path = "../checks/path_template.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
