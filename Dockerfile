# syntax=docker/dockerfile:1
#
# pr-reminder container image.
#
#   docker build -t pr-reminder .
#   docker run --rm -p 8080:8080 -v pr-reminder-data:/data \
#       -v "$PWD/pr-reminder.toml:/config/pr-reminder.toml:ro" \
#       -e PR_REMINDER_CONFIG=/config/pr-reminder.toml \
#       -e PR_REMINDER_WEBHOOK_SECRET=... pr-reminder
#
# Or use docker-compose.yml (secrets from .env, settings from pr-reminder.toml).
#
# The binary is built with Cargo's `dist` profile: the release build without debug info
# (README, "The image", says its size).

ARG RUST_VERSION=1
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------------------
# Build stage
# ---------------------------------------------------------------------------
FROM rust:${RUST_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /build

# 1. Dependencies only: build the locked dependency graph against a dummy crate so this
#    layer is reused until Cargo.toml or Cargo.lock change. SQLite is compiled in
#    (sqlx's bundled libsqlite3-sys), which needs only the C compiler this image has.
COPY Cargo.toml Cargo.lock ./
RUN mkdir src \
    && echo 'fn main() {}' > src/main.rs \
    && : > src/lib.rs \
    && cargo build --profile dist --locked --bin pr-reminder \
    && rm -rf src \
        target/dist/pr-reminder* \
        target/dist/deps/pr_reminder-* \
        target/dist/deps/libpr_reminder-* \
        target/dist/.fingerprint/pr-reminder-*

# 2. The crate itself. `sqlx::migrate!("./migrations/sqlite")` and `("./migrations/postgres")` embed
#    the migrations at compile time, so migrations/ must be present before this build (and the
#    image needs no copy).
COPY migrations ./migrations
COPY src ./src
RUN touch src/main.rs src/lib.rs \
    && cargo build --profile dist --locked --bin pr-reminder \
    && install -D -m 0755 target/dist/pr-reminder /out/pr-reminder

# ---------------------------------------------------------------------------
# Runtime stage
# ---------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime

ARG APP_UID=10001
ARG APP_GID=10001

# ca-certificates: for outbound HTTPS (chat notifications). No curl: the health check
# below uses bash's /dev/tcp.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid "${APP_GID}" pr-reminder \
    && useradd --system --uid "${APP_UID}" --gid pr-reminder \
        --home-dir /data --no-create-home --shell /usr/sbin/nologin pr-reminder \
    && mkdir -p /data /config \
    && chown pr-reminder:pr-reminder /data \
    && chmod 0750 /data

COPY --from=build /out/pr-reminder /usr/local/bin/pr-reminder

# Listen on all interfaces inside the container (a non-loopback address means the service
# refuses to start without PR_REMINDER_WEBHOOK_SECRET or PR_REMINDER_INSECURE_SKIP_SIGNATURE=1,
# exiting with code 2). The database lives on the /data volume.
ENV PR_REMINDER_LISTEN=0.0.0.0:8080 \
    PR_REMINDER_DATABASE=/data/pr-reminder.db

# Declared after the chown so a fresh named volume starts out owned by the service user.
VOLUME ["/data"]
WORKDIR /data
USER pr-reminder:pr-reminder
EXPOSE 8080

# Ready = HTTP answers and the database answers (GET /readyz -> 200). Plain bash, no curl;
# the port follows PR_REMINDER_LISTEN.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["bash", "-c", "exec 3<>\"/dev/tcp/127.0.0.1/${PR_REMINDER_LISTEN##*:}\" && printf 'GET /readyz HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && read -r _ code _ <&3 && [ \"$code\" = 200 ]"]

# actix-web drains in-flight requests on SIGTERM, then the writer commits what it holds:
# allow ~20 s (`docker stop -t 30`, or stop_grace_period in compose).
STOPSIGNAL SIGTERM
ENTRYPOINT ["pr-reminder"]
CMD ["serve"]
