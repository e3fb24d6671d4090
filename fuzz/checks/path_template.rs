//! Fuzzes the path/topic template matcher (HTTP `http_path` routes; the
//! MQTT topic mapper reuses it).
//!
//! Input: a template and a path separated by the first newline.
//! Invariants: a parsed template renders back to itself; a match yields
//! one non-empty, slash-free capture per `{name}` segment, and putting the
//! captures back into the template gives the path again.
use dynamo_ingest::event::template::PathTemplate;

/// One input: panics (an assertion) when an invariant breaks.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (pattern, path) = text.split_once('\n').unwrap_or((text, ""));
    let Ok(template) = PathTemplate::parse(pattern) else {
        return;
    };
    assert_eq!(template.pattern(), pattern);
    let Some(captures) = template.matches(path) else {
        return;
    };
    let expected = pattern
        .split('/')
        .filter(|s| s.starts_with('{') && s.ends_with('}'))
        .count();
    assert_eq!(captures.len(), expected);
    let mut rebuilt = Vec::new();
    let mut next = captures.iter();
    for seg in pattern.split('/') {
        if seg.starts_with('{') && seg.ends_with('}') && seg.len() >= 2 {
            let (name, value) = next.next().expect("one capture per segment");
            assert_eq!(format!("{{{name}}}"), seg);
            assert!(!value.is_empty() && !value.contains('/'));
            rebuilt.push(*value);
        } else {
            rebuilt.push(seg);
        }
    }
    assert_eq!(rebuilt.join("/"), path);
}
