//! The fuzz targets' checks (fuzz/checks/, outside the workspace because
//! cargo-fuzz needs nightly) compiled by the workspace's stable `cargo test`
//! and run over every input of their checked-in corpus (fuzz/corpus/) and
//! any crash libFuzzer left in fuzz/artifacts/: a change that breaks a
//! target's build, or an invariant on an input the fuzzer once found, fails
//! here instead of at the next fuzz run (the targets once went unbuilt for
//! a day after an API change).

use std::path::Path;

#[path = "../fuzz/checks/http_body.rs"]
mod http_body;
#[path = "../fuzz/checks/mqtt_publish.rs"]
mod mqtt_publish;
#[path = "../fuzz/checks/path_template.rs"]
mod path_template;

/// Every file under fuzz/corpus/TARGET and fuzz/artifacts/TARGET, sorted;
/// returns how many corpus files there were.
fn replay(target: &str, check: fn(&[u8])) -> usize {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let mut corpus = 0;
    for (dir, is_corpus) in [("corpus", true), ("artifacts", false)] {
        let Ok(entries) = std::fs::read_dir(fuzz.join(dir).join(target)) else {
            assert!(!is_corpus, "fuzz/corpus/{target} is checked in");
            continue;
        };
        let mut paths: Vec<_> = entries
            .map(|e| e.expect("a readable entry").path())
            .collect();
        paths.sort();
        for path in paths {
            let data = std::fs::read(&path).expect("a readable input");
            let outcome = std::panic::catch_unwind(|| check(&data));
            assert!(outcome.is_ok(), "{} breaks an invariant", path.display());
            corpus += usize::from(is_corpus);
        }
    }
    corpus
}

#[test]
fn the_http_body_corpus_keeps_its_invariants() {
    assert!(replay("http_body", http_body::check) >= 100);
}

#[test]
fn the_mqtt_publish_corpus_keeps_its_invariants() {
    assert!(replay("mqtt_publish", mqtt_publish::check) >= 100);
}

#[test]
fn the_path_template_corpus_keeps_its_invariants() {
    assert!(replay("path_template", path_template::check) >= 20);
}
