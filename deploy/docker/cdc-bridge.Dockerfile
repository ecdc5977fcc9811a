# syntax=docker/dockerfile:1
# The fig CDC bridge. Build from the repository root:
#   docker build -f deploy/docker/cdc-bridge.Dockerfile -t fig/cdc-bridge:0.1.0 .
# No HEALTHCHECK: orchestrators probe GET /health/live and /health/ready on port 9187.

FROM rust:1-bookworm AS build
# cmake + zlib: rdkafka builds librdkafka statically; libpq-dev: pg_walstream links libpq.
RUN apt-get update \
 && apt-get install -y --no-install-recommends cmake pkg-config libpq-dev zlib1g-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Cargo.toml Cargo.lock rustfmt.toml clippy.toml ./
COPY contracts contracts
COPY acl acl
COPY cdc-bridge cdc-bridge
COPY gateway gateway
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p cdc-bridge --bin cdc-bridge \
 && cp target/release/cdc-bridge /usr/local/bin/cdc-bridge

FROM debian:bookworm-slim AS runtime
# libpq5: the replication connection (pg_walstream over libpq); librdkafka is linked statically.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fig \
 && useradd --system --uid 10001 --gid fig --home-dir /nonexistent --shell /usr/sbin/nologin fig
COPY --from=build /usr/local/bin/cdc-bridge /usr/local/bin/cdc-bridge
ENV FIG_BRIDGE_CONFIG=/etc/fig/bridge.toml
USER 10001:10001
# 9187: /health/live, /health/ready (ready only while streaming), /metrics.
EXPOSE 9187
ENTRYPOINT ["/usr/local/bin/cdc-bridge"]
CMD ["run"]
