//! Path and topic templates such as `/devices/{device_id}/readings` or
//! `sensors/{device_id}/telemetry`: literal segments and `{name}` captures,
//! separated by `/`. Captured segments become context fields of the event
//! (they can fill key attributes).

use smallvec::SmallVec;

/// The captured segments of a matched path, (name, text) in template order;
/// up to four are kept inline (no allocation per message or request).
pub type Captures<'t, 'p> = SmallVec<[(&'t str, &'p str); 4]>;

/// A parsed template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathTemplate {
    pattern: String,
    segments: Vec<Segment>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Capture(String),
}

impl PathTemplate {
    /// Parses a template; every `{name}` must be a whole segment with a non-empty name.
    pub fn parse(pattern: &str) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("template must not be empty".to_owned());
        }
        let mut names = Vec::new();
        let segments = pattern
            .split('/')
            .map(|seg| {
                if let Some(name) = seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    if name.is_empty() || name.contains(['{', '}']) {
                        return Err(format!("bad capture `{seg}` in `{pattern}`"));
                    }
                    if names.contains(&name) {
                        return Err(format!("capture `{name}` appears twice in `{pattern}`"));
                    }
                    names.push(name);
                    Ok(Segment::Capture(name.to_owned()))
                } else if seg.contains(['{', '}']) {
                    Err(format!(
                        "`{{name}}` must fill a whole segment in `{pattern}`"
                    ))
                } else {
                    Ok(Segment::Literal(seg.to_owned()))
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self {
            pattern: pattern.to_owned(),
            segments,
        })
    }

    /// The template as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// Matches `path` and returns the captures, or `None`. Captures must be non-empty.
    pub fn matches<'a>(&self, path: &'a str) -> Option<Captures<'_, 'a>> {
        // As `path.split('/')`, by hand: segments are short, and a byte loop
        // finds their end faster than the split iterator's `memchr` calls.
        let mut rest = Some(path);
        let mut captures = Captures::new();
        for seg in &self.segments {
            let text = rest?;
            let part = match text.bytes().position(|b| b == b'/') {
                Some(end) => {
                    rest = Some(&text[end + 1..]);
                    &text[..end]
                }
                None => {
                    rest = None;
                    text
                }
            };
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Capture(_) if part.is_empty() => return None,
                Segment::Capture(name) => captures.push((name.as_str(), part)),
            }
        }
        rest.is_none().then_some(captures)
    }

    /// True when some path matches both templates (same segment count, and
    /// no position where both are different literals).
    pub fn overlaps(&self, other: &PathTemplate) -> bool {
        self.segments.len() == other.segments.len()
            && self
                .segments
                .iter()
                .zip(&other.segments)
                .all(|pair| match pair {
                    (Segment::Literal(a), Segment::Literal(b)) => a == b,
                    _ => true,
                })
    }

    /// The MQTT subscription filter matching this template: captures become `+`.
    pub fn to_mqtt_filter(&self) -> String {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Literal(l) => l.as_str(),
                Segment::Capture(_) => "+",
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captures_whole_segments() {
        let t = PathTemplate::parse("sensors/{device_id}/telemetry").expect("valid");
        assert_eq!(
            t.matches("sensors/D001/telemetry"),
            Some(Captures::from_slice(&[("device_id", "D001")]))
        );
        assert_eq!(t.matches("sensors//telemetry"), None);
        assert_eq!(t.matches("sensors/D001/telemetry/x"), None);
        assert_eq!(t.matches("sensors/D001"), None);
        assert_eq!(t.matches("other/D001/telemetry"), None);
    }

    #[test]
    fn overlap_and_filter() {
        let a = PathTemplate::parse("sensors/{device_id}/telemetry").expect("valid");
        let b = PathTemplate::parse("sensors/x/{kind}").expect("valid");
        let c = PathTemplate::parse("sensors/{device_id}/status").expect("valid");
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        assert!(!a.overlaps(&PathTemplate::parse("sensors/{d}").expect("valid")));
        assert_eq!(a.to_mqtt_filter(), "sensors/+/telemetry");
    }

    /// The matcher as it was written first, on `str::split`.
    fn by_split<'t, 'a>(t: &'t PathTemplate, path: &'a str) -> Option<Vec<(&'t str, &'a str)>> {
        let mut parts = path.split('/');
        let mut captures = Vec::new();
        for seg in &t.segments {
            let part = parts.next()?;
            match seg {
                Segment::Literal(l) if l == part => {}
                Segment::Literal(_) => return None,
                Segment::Capture(_) if part.is_empty() => return None,
                Segment::Capture(name) => captures.push((name.as_str(), part)),
            }
        }
        parts.next().is_none().then_some(captures)
    }

    proptest::proptest! {
        #[test]
        fn matching_agrees_with_splitting_the_path(
            template in proptest::sample::select(vec![
                "a", "{x}", "a/{x}", "{x}/a", "{x}/{y}", "a/{x}/b", "a/b/{x}", "{x}/{y}/{z}/{w}/{v}",
            ]),
            path in "[ab/]{0,12}",
        ) {
            let t = PathTemplate::parse(template).expect("valid");
            let got = t.matches(&path).map(|c| c.to_vec());
            proptest::prop_assert_eq!(got, by_split(&t, &path));
        }
    }

    #[test]
    fn rejects_malformed_templates() {
        assert!(PathTemplate::parse("a/{x}y/b").is_err());
        assert!(PathTemplate::parse("a/{}/b").is_err());
        assert!(PathTemplate::parse("a/{x}/{x}").is_err());
        assert!(PathTemplate::parse("").is_err());
    }
}
