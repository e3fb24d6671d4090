//! HTTP load driver: C workers, each with at most one request in flight on
//! a keep-alive connection, paced by [`crate::pacing`]. A 2xx answer
//! acknowledges every event of the request; anything else counts all of
//! them as failed, by kind (`http_503_queue_full`, `timeout`, `connect`...).

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rand::rngs::SmallRng;
use rand::SeedableRng;

use crate::events::EventGen;
use crate::keys::KeyPicker;
use crate::pacing::{Budget, Pacer};
use crate::recorder::{Live, Recorder};
use crate::spec::LoadSpec;
use crate::summary::Summary;

type HttpClient = Client<HttpConnector, Full<Bytes>>;

/// Runs the HTTP load of `spec` and returns its summary (without verification).
pub async fn run(spec: &LoadSpec, live: &Live) -> anyhow::Result<Summary> {
    spec.validate()?;
    let run_id = spec.run_id.clone().unwrap_or_default();
    let picker = KeyPicker::new(
        spec.keys.get(),
        spec.distribution,
        spec.zipf_exponent,
        spec.hot_share,
    )?;
    let workers = spec.concurrency.get();
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: HttpClient = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(workers as usize)
        .build(connector);
    let budget = Budget::new(spec.duration, spec.count);
    let started = std::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for w in 0..workers {
        let gen = EventGen::new(spec.shape, &run_id, picker.clone(), spec.pad_bytes, w);
        let worker = Worker {
            client: client.clone(),
            base: format!("http://{}", spec.target),
            spec: spec.clone(),
            gen,
            budget: budget.clone(),
            pacer: Pacer::new(spec.rate, workers, spec.batch.get(), w),
            rec: Recorder::new(live),
            rng: SmallRng::seed_from_u64(rand::random()),
        };
        tasks.spawn(worker.run());
    }
    let mut total = Recorder::new(&Live::default());
    while let Some(done) = tasks.join_next().await {
        total.merge(done?);
    }
    Ok(Summary::new(spec, &run_id, total, started.elapsed()))
}

struct Worker {
    client: HttpClient,
    base: String,
    spec: LoadSpec,
    gen: EventGen,
    budget: Budget,
    pacer: Pacer,
    rec: Recorder,
    rng: SmallRng,
}

impl Worker {
    async fn run(mut self) -> Recorder {
        let batch = self.spec.batch.get();
        while let Some(slot) = self.pacer.next_slot(self.budget.deadline()).await {
            let n = self.budget.take(batch);
            if n == 0 {
                break;
            }
            let req = self
                .gen
                .http(&mut self.rng, self.spec.route, n, self.spec.ack);
            let request = Request::post(format!("{}{}", self.base, req.path))
                .header("content-type", req.content_type)
                .body(Full::new(req.body));
            let request = match request {
                Ok(r) => r,
                Err(_) => {
                    self.rec.sent(n);
                    self.rec.failed(n, "bad_request_built");
                    continue;
                }
            };
            self.rec.sent(n);
            match tokio::time::timeout(self.spec.request_timeout, send(&self.client, request)).await
            {
                Err(_) => self.rec.failed(n, "timeout"),
                Ok(Err(kind)) => self.rec.failed(n, &kind),
                Ok(Ok(())) => self.rec.acked(n, Some(slot.elapsed())),
            }
        }
        self.rec.flush_window();
        self.rec
    }
}

/// Sends one request; Ok on 2xx, else the failure kind.
async fn send(client: &HttpClient, req: Request<Full<Bytes>>) -> Result<(), String> {
    let resp = client.request(req).await.map_err(|e| {
        if e.is_connect() {
            "connect".to_owned()
        } else {
            "transport".to_owned()
        }
    })?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|_| "transport".to_owned())?
        .to_bytes();
    if status.is_success() {
        return Ok(());
    }
    Err(error_kind(status.as_u16(), &body))
}

/// `http_{status}_{code}` with the gateway's JSON `error` code when present.
pub fn error_kind(status: u16, body: &[u8]) -> String {
    let code = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned));
    match code {
        Some(c) => format!("http_{status}_{c}"),
        None => format!("http_{status}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_kinds_name_status_and_code() {
        assert_eq!(
            error_kind(503, br#"{"error":"queue_full","message":"x"}"#),
            "http_503_queue_full"
        );
        assert_eq!(error_kind(502, b"Bad gateway"), "http_502");
    }
}
