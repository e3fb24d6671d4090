//! Event bodies in the seed's three shapes (sensor, activity, cart), as
//! HTTP requests and as MQTT messages.
//!
//! Invariants: the partition key always comes from [`crate::keys`] (so it
//! carries the run id); no event carries its own `timestamp`, so the gateway
//! assigns a unique sort key per partition key; cart events get an
//! `item_id` unique within the run (`{worker}-{n}`). Together these make
//! every acknowledged event exactly one stored item.

use bytes::Bytes;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;

use crate::keys::{key_name, push_key_name, KeyPicker};
use crate::spec::{Ack, Route, Shape};

impl Shape {
    /// The DynamoDB table the default config writes this shape to.
    pub fn table(self) -> &'static str {
        match self {
            Shape::Sensor => "IoTSensorData",
            Shape::Activity => "UserActivity",
            Shape::Cart => "ShoppingCart",
        }
    }

    /// The table's partition key attribute.
    pub fn key_attribute(self) -> &'static str {
        match self {
            Shape::Sensor => "device_id",
            Shape::Activity | Shape::Cart => "user_id",
        }
    }

    /// The default config's stream name.
    pub fn stream(self) -> &'static str {
        match self {
            Shape::Sensor => "sensor",
            Shape::Activity => "activity",
            Shape::Cart => "cart",
        }
    }

    /// Letter between the run id and the key index (`d` devices, `u` users).
    pub fn key_prefix(self) -> &'static str {
        match self {
            Shape::Sensor => "d",
            Shape::Activity | Shape::Cart => "u",
        }
    }

    /// MQTT topic of a message from `key` (the gateway's topic routes).
    pub fn topic(self, key: &str) -> String {
        match self {
            Shape::Sensor => format!("sensors/{key}/telemetry"),
            Shape::Activity => format!("activity/{key}"),
            Shape::Cart => format!("carts/{key}"),
        }
    }

    /// MQTT topic filter matching every topic of this shape.
    pub fn topic_filter(self) -> &'static str {
        match self {
            Shape::Sensor => "sensors/+/telemetry",
            Shape::Activity => "activity/+",
            Shape::Cart => "carts/+",
        }
    }
}

const ACTIONS: [&str; 4] = ["login", "view_item", "add_to_cart", "checkout"];

/// One HTTP request's worth of events.
#[derive(Debug, Clone)]
pub struct HttpRequest {
    /// Path and query string.
    pub path: String,
    /// Content-Type of the body.
    pub content_type: &'static str,
    /// Body (empty for the query-string seed routes).
    pub body: Bytes,
    /// Events it carries.
    pub events: u64,
}

/// Makes events for one worker (each worker has its own, no sharing).
#[derive(Debug, Clone)]
pub struct EventGen {
    shape: Shape,
    run_id: String,
    picker: KeyPicker,
    pad: String,
    worker: u64,
    seq: u64,
}

impl EventGen {
    /// Events of `shape` for run `run_id`, keys from `picker`, `pad_bytes` of padding, made by `worker`.
    pub fn new(shape: Shape, run_id: &str, picker: KeyPicker, pad_bytes: u32, worker: u64) -> Self {
        Self {
            shape,
            run_id: run_id.to_owned(),
            picker,
            pad: "x".repeat(pad_bytes as usize),
            worker,
            seq: 0,
        }
    }

    /// The partition key value of the next event.
    pub fn next_key<R: Rng + ?Sized>(&self, rng: &mut R) -> String {
        key_name(&self.run_id, self.shape.key_prefix(), self.picker.pick(rng))
    }

    /// Appends the next event's partition key value to `out`.
    fn push_next_key<R: Rng + ?Sized>(&self, rng: &mut R, out: &mut String) {
        let i = self.picker.pick(rng);
        push_key_name(out, &self.run_id, self.shape.key_prefix(), i);
    }

    /// One event as a JSON object. `with_key` puts the partition key in the
    /// body (HTTP); MQTT takes it from the topic instead.
    pub fn json<R: Rng + ?Sized>(&mut self, rng: &mut R, key: Option<&str>) -> String {
        let mut s = String::with_capacity(96 + self.pad.len());
        self.push_json(rng, key, &mut s);
        s
    }

    /// Appends [`Self::json`]'s text to `out`, without `core::fmt` (the
    /// generator shares the machine with what it measures: formatting was
    /// a third of its CPU under NDJSON load).
    fn push_json<R: Rng + ?Sized>(&mut self, rng: &mut R, key: Option<&str>, s: &mut String) {
        let mut n = itoa::Buffer::new();
        s.push('{');
        if let Some(k) = key {
            s.push('"');
            s.push_str(self.shape.key_attribute());
            s.push_str("\":\"");
            s.push_str(k);
            s.push_str("\",");
        }
        match self.shape {
            Shape::Sensor => {
                let (whole, tenths, humidity): (i32, i32, i32) = (
                    rng.random_range(15..35),
                    rng.random_range(0..10),
                    rng.random_range(30..90),
                );
                s.push_str("\"temperature\":");
                s.push_str(n.format(whole));
                s.push('.');
                s.push_str(n.format(tenths));
                s.push_str(",\"humidity\":");
                s.push_str(n.format(humidity));
            }
            Shape::Activity => {
                let action = ACTIONS[rng.random_range(0..ACTIONS.len())];
                let host: i32 = rng.random_range(1..255);
                s.push_str("\"action\":\"");
                s.push_str(action);
                s.push_str("\",\"metadata\":{\"ip\":\"192.0.2.");
                s.push_str(n.format(host));
                s.push_str("\"}");
            }
            Shape::Cart => {
                let item = self.next_item_id();
                let (quantity, price): (i32, i32) =
                    (rng.random_range(1..5), rng.random_range(5..2000));
                s.push_str("\"item_id\":\"");
                s.push_str(&item);
                s.push_str("\",\"name\":\"Laptop\",\"quantity\":");
                s.push_str(n.format(quantity));
                s.push_str(",\"price\":");
                s.push_str(n.format(price));
                s.push_str(".99");
            }
        }
        if !self.pad.is_empty() {
            s.push_str(",\"pad\":\"");
            s.push_str(&self.pad);
            s.push('"');
        }
        s.push('}');
    }

    fn next_item_id(&mut self) -> String {
        self.seq += 1;
        format!("{}-{}", self.worker, self.seq)
    }

    /// The next HTTP request: `batch` events on `route` asking for `ack`.
    pub fn http<R: Rng + ?Sized>(
        &mut self,
        rng: &mut R,
        route: Route,
        batch: u64,
        ack: Ack,
    ) -> HttpRequest {
        let ack = match ack {
            Ack::Queued => "queued",
            Ack::Written => "written",
            Ack::Spooled => "spooled",
        };
        match route {
            Route::Stream => {
                let path = format!("/v1/streams/{}/events?ack={ack}", self.shape.stream());
                let per_event = 128 + self.run_id.len() + self.pad.len();
                let mut body = String::with_capacity(per_event.saturating_mul(batch as usize));
                let mut key = String::new();
                for _ in 0..batch {
                    key.clear();
                    self.push_next_key(rng, &mut key);
                    self.push_json(rng, Some(&key), &mut body);
                    body.push('\n');
                }
                HttpRequest {
                    path,
                    content_type: if batch > 1 {
                        "application/x-ndjson"
                    } else {
                        "application/json"
                    },
                    body: Bytes::from(body),
                    events: batch,
                }
            }
            Route::Seed => self.seed_request(rng, ack),
        }
    }

    fn seed_request<R: Rng + ?Sized>(&mut self, rng: &mut R, ack: &str) -> HttpRequest {
        let key = self.next_key(rng);
        let pad = if self.pad.is_empty() {
            String::new()
        } else {
            format!("&pad={}", self.pad)
        };
        let (path, body) = match self.shape {
            Shape::Sensor => (
                format!("/upload_data?ack={ack}"),
                Bytes::from(self.json(rng, Some(&key))),
            ),
            Shape::Activity => {
                let action = ACTIONS[rng.random_range(0..ACTIONS.len())];
                (
                    format!(
                        "/log_activity/?user_id={}&action={action}&ack={ack}{pad}",
                        enc(&key)
                    ),
                    Bytes::new(),
                )
            }
            Shape::Cart => {
                let item = self.next_item_id();
                (
                    format!(
                        "/add_to_cart/?user_id={}&item_id={item}&name=Laptop&quantity={}&price={}.99&ack={ack}{pad}",
                        enc(&key),
                        rng.random_range(1..5),
                        rng.random_range(5..2000)
                    ),
                    Bytes::new(),
                )
            }
        };
        HttpRequest {
            path,
            content_type: "application/json",
            body,
            events: 1,
        }
    }
}

/// Query-value encoding; keeps the unreserved `-`, `_`, `.`, `~` readable.
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn enc(s: &str) -> String {
    utf8_percent_encode(s, QUERY_VALUE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::Distribution;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn generator(shape: Shape, pad: u32) -> EventGen {
        let picker = KeyPicker::new(10, Distribution::Uniform, 1.0, 0.0).expect("picker");
        EventGen::new(shape, "run1", picker, pad, 3)
    }

    /// The events as `format!` wrote them before the generator wrote its
    /// text by hand: same random draws in the same order, same text.
    fn formatted<R: Rng>(g: &mut EventGen, rng: &mut R, key: Option<&str>) -> String {
        let mut s = String::from("{");
        if let Some(k) = key {
            s += &format!("\"{}\":\"{k}\",", g.shape.key_attribute());
        }
        s += &match g.shape {
            Shape::Sensor => format!(
                "\"temperature\":{}.{},\"humidity\":{}",
                rng.random_range(15..35),
                rng.random_range(0..10),
                rng.random_range(30..90)
            ),
            Shape::Activity => format!(
                "\"action\":\"{}\",\"metadata\":{{\"ip\":\"192.0.2.{}\"}}",
                ACTIONS[rng.random_range(0..ACTIONS.len())],
                rng.random_range(1..255)
            ),
            Shape::Cart => {
                let item = g.next_item_id();
                format!(
                    "\"item_id\":\"{item}\",\"name\":\"Laptop\",\"quantity\":{},\"price\":{}.99",
                    rng.random_range(1..5),
                    rng.random_range(5..2000)
                )
            }
        };
        if !g.pad.is_empty() {
            s += &format!(",\"pad\":\"{}\"", g.pad);
        }
        s + "}"
    }

    #[test]
    fn events_are_the_text_format_wrote() {
        for shape in [Shape::Sensor, Shape::Activity, Shape::Cart] {
            for (pad, key) in [(0, None), (0, Some("run1-d000042")), (7, Some("k"))] {
                let (mut a, mut b) = (generator(shape, pad), generator(shape, pad));
                let (mut ra, mut rb) = (StdRng::seed_from_u64(9), StdRng::seed_from_u64(9));
                for _ in 0..2_000 {
                    assert_eq!(a.json(&mut ra, key), formatted(&mut b, &mut rb, key));
                }
            }
        }
        // An NDJSON body is the same events, keys drawn before each.
        let (mut a, mut b) = (generator(Shape::Sensor, 0), generator(Shape::Sensor, 0));
        let (mut ra, mut rb) = (StdRng::seed_from_u64(3), StdRng::seed_from_u64(3));
        let req = a.http(&mut ra, Route::Stream, 50, Ack::Written);
        let expected: String = (0..50)
            .map(|_| {
                let key = b.next_key(&mut rb);
                formatted(&mut b, &mut rb, Some(&key)) + "\n"
            })
            .collect();
        assert_eq!(std::str::from_utf8(&req.body).expect("utf-8"), expected);
    }

    #[test]
    fn ndjson_batches_carry_one_valid_event_per_line() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut g = generator(Shape::Sensor, 20);
        let req = g.http(&mut rng, Route::Stream, 5, Ack::Queued);
        assert_eq!(req.events, 5);
        assert_eq!(req.content_type, "application/x-ndjson");
        let text = std::str::from_utf8(&req.body).expect("utf8");
        let lines: Vec<_> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        for l in lines {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            assert!(v["device_id"].as_str().expect("key").starts_with("run1-d"));
            assert_eq!(v["pad"].as_str().expect("pad").len(), 20);
            assert!(
                v.get("timestamp").is_none(),
                "the gateway assigns the sort key"
            );
        }
    }

    #[test]
    fn cart_item_ids_are_unique() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut g = generator(Shape::Cart, 0);
        let a = g.http(&mut rng, Route::Seed, 1, Ack::Written);
        let b = g.http(&mut rng, Route::Seed, 1, Ack::Written);
        assert!(
            a.path.starts_with("/add_to_cart/?user_id=run1-u"),
            "{}",
            a.path
        );
        assert!(a.path.contains("item_id=3-1&") && b.path.contains("item_id=3-2&"));
        assert!(a.path.ends_with("ack=written"));
    }

    #[test]
    fn mqtt_payload_leaves_the_key_to_the_topic() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut g = generator(Shape::Activity, 0);
        let v: serde_json::Value = serde_json::from_str(&g.json(&mut rng, None)).expect("json");
        assert!(v.get("user_id").is_none());
        assert_eq!(Shape::Activity.topic("k"), "activity/k");
    }
}
