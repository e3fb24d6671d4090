# syntax=docker/dockerfile:1
#
# dynamo-ingest container image: `docker build -t dynamo-ingest .`
# Runtime config: deploy/docker.toml, installed as /etc/dynamo-ingest/config.toml
# (mount another file there to change it). See docs/OPERATIONS.md.

# ---------------------------------------------------------------------------
# Builder. Dependencies are compiled in their own layer from the manifests
# and the lock file only, with stub sources, so that editing the code does
# not rebuild the ~300 dependency crates.
FROM rust:1-bookworm AS builder
WORKDIR /src

# Every workspace member's manifest: cargo loads the whole workspace.
COPY Cargo.toml Cargo.lock ./
COPY loadtest/dynamo-sim/Cargo.toml loadtest/dynamo-sim/Cargo.toml
COPY loadtest/rate-bench/Cargo.toml loadtest/rate-bench/Cargo.toml
COPY loadtest/loadgen/Cargo.toml loadtest/loadgen/Cargo.toml
COPY loadtest/baselines/bare-hyper/Cargo.toml loadtest/baselines/bare-hyper/Cargo.toml

# Stub targets: the ones the manifests name explicitly ([[bench]],
# [[example]]) must exist for the workspace to load.
RUN mkdir -p src benches loadtest/dynamo-sim/src loadtest/dynamo-sim/examples loadtest/rate-bench/src \
    loadtest/loadgen/src loadtest/baselines/bare-hyper/src \
 && echo 'fn main() {}' > src/main.rs \
 && touch src/lib.rs \
 && echo 'fn main() {}' > benches/hot_paths.rs \
 && touch loadtest/dynamo-sim/src/lib.rs \
 && echo 'fn main() {}' > loadtest/dynamo-sim/src/main.rs \
 && echo 'fn main() {}' > loadtest/dynamo-sim/examples/blast.rs \
 && echo 'fn main() {}' > loadtest/rate-bench/src/main.rs \
 && touch loadtest/loadgen/src/lib.rs \
 && echo 'fn main() {}' > loadtest/loadgen/src/main.rs \
 && echo 'fn main() {}' > loadtest/baselines/bare-hyper/src/main.rs \
 && cargo build --release --locked -p dynamo-ingest \
 && rm -rf src benches loadtest

# The real sources. config/default.toml is embedded in the binary (include_str!).
COPY src src
COPY benches benches
COPY config config
COPY loadtest/dynamo-sim loadtest/dynamo-sim
COPY loadtest/rate-bench loadtest/rate-bench
COPY loadtest/loadgen loadtest/loadgen
COPY loadtest/baselines/bare-hyper loadtest/baselines/bare-hyper
# COPY keeps the files' modification times, which can be older than the
# stubs' build: touch them so cargo rebuilds the workspace crates.
RUN find src benches loadtest -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p dynamo-ingest \
 && cp target/release/dynamo-ingest /usr/local/bin/dynamo-ingest

# ---------------------------------------------------------------------------
# Runtime: glibc matches the builder (both bookworm).
FROM debian:bookworm-slim

# ca-certificates: TLS to real AWS endpoints. No curl: the health check
# uses bash's /dev/tcp (bash is in the base image).
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 dynamo-ingest \
 && useradd --system --uid 10001 --gid dynamo-ingest --home-dir /var/lib/dynamo-ingest \
      --no-create-home --shell /usr/sbin/nologin dynamo-ingest \
 && mkdir -p /etc/dynamo-ingest /var/lib/dynamo-ingest \
 && chown dynamo-ingest:dynamo-ingest /var/lib/dynamo-ingest

COPY --from=builder /usr/local/bin/dynamo-ingest /usr/local/bin/dynamo-ingest
COPY deploy/docker.toml /etc/dynamo-ingest/config.toml

USER 10001:10001
WORKDIR /var/lib/dynamo-ingest
# The dead-letter file lives here: keep it on a volume.
VOLUME ["/var/lib/dynamo-ingest"]

ENV RUST_LOG=info
# SIGTERM starts the graceful drain (flush every queued event within
# shutdown_grace, 30 s by default): give the container a stop timeout above
# it (`docker run --stop-timeout 40`, compose `stop_grace_period: 40s`).
STOPSIGNAL SIGTERM
# 8080: HTTP ingest; 1883: MQTT (embedded broker); 9464: admin (/metrics, /healthz, /readyz).
EXPOSE 8080 1883 9464

# /healthz answers 200 while the process serves. Liveness only: /readyz
# (tables ready, DynamoDB reachable) is for load balancers, and a container
# must not be restarted because DynamoDB is unreachable.
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
  CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/9464 && printf 'GET /healthz HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n' >&3 && read -r -t 2 status <&3 && [[ $status == *' 200 '* ]]"]

ENTRYPOINT ["dynamo-ingest"]
CMD ["--config", "/etc/dynamo-ingest/config.toml"]
