# syntax=docker/dockerfile:1
# SecureInfer gateway image: built in a full Rust image, shipped in a distroless one that has
# no shell, no package manager and a non-root user. Build: `make docker-build`.

# --- build ------------------------------------------------------------------------------------
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Everything the build needs is in the Rust image (aws-lc-rs, the TLS crypto provider,
# compiles its C with the image's cc).
COPY Cargo.toml Cargo.lock ./
COPY crates ./crates
# The caches keep downloaded crates and compiled dependencies between builds; the binary is
# copied out of the cache mount so the next stage can see it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p secureinfer \
    && install -D -m 0755 target/release/secureinfer /out/secureinfer \
    && mkdir -p /out/data

# --- run --------------------------------------------------------------------------------------
# glibc + libgcc + CA certificates, nothing else; runs as uid/gid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/secureinfer /usr/local/bin/secureinfer
# The only writable place the gateway needs (SQLite when DATABASE_URL is not PostgreSQL).
# Mount a volume here: the root filesystem is meant to run read-only.
COPY --from=build --chown=65532:65532 /out/data /data
WORKDIR /data
USER 65532:65532
ENV SECUREINFER_ENV=production \
    API_HOST=0.0.0.0 \
    API_PORT=8000 \
    DATABASE_URL=sqlite:///data/secureinfer.db
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/secureinfer"]
CMD ["serve"]
