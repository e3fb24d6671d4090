//! The `mqtt_publish` fuzz target: libFuzzer feeds [`checks::check`] (in
//! `fuzz/checks/mqtt_publish.rs`, where its input and invariants are described).
//! The same check replays the checked-in corpus in the workspace's
//! `cargo test` (tests/fuzz_corpus.rs), so it cannot stop compiling unseen.
#![no_main]

#[path = "../checks/mqtt_publish.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::check(data));
