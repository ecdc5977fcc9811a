# syntax=docker/dockerfile:1
# The fig gateway. Build from the repository root:
#   docker build -f deploy/docker/gateway.Dockerfile -t fig/gateway:0.1.0 .
# No HEALTHCHECK: orchestrators probe GET /health/live and /health/ready on the admin port.

FROM rust:1-bookworm AS build
# cmake + zlib for rdkafka's static librdkafka, libpq-dev for pg_walstream's libpq: the gateway
# does not link them, but one workspace lock file resolves for every member, so the same build
# image serves both services and its layers are shared.
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
    cargo build --release --locked -p gateway --bin gateway \
 && cp target/release/gateway /usr/local/bin/gateway

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates libpq5 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 fig \
 && useradd --system --uid 10001 --gid fig --home-dir /nonexistent --shell /usr/sbin/nologin fig
COPY --from=build /usr/local/bin/gateway /usr/local/bin/gateway
ENV FIG_GATEWAY_CONFIG=/etc/fig/gateway.toml
USER 10001:10001
# 8080: public listener (`listen`); 9090: admin listener (`[admin] listen`: API, console, health, metrics).
EXPOSE 8080 9090
ENTRYPOINT ["/usr/local/bin/gateway"]
CMD ["run"]
