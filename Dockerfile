# syntax=docker/dockerfile:1.7
# The `parq` server image: a locked release build of the binary, then the binary alone on
# distroless/cc (glibc, libgcc and the CA certificates), running as a non-root numeric user.
#
#   docker build -t parq:dev .            (BuildKit: the cache mounts keep crates and builds)
#   docker run --rm -p 8080:8080 parq:dev serve --memory
#
# See deploy/README.md for the Kubernetes manifests that run it.

ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
# Dependency caching: the downloaded crates (cargo's registry and git folders) and the target
# directory are BuildKit cache mounts, kept between builds; a changed source file rebuilds only
# the workspace's own crates, and a changed Cargo.lock fetches only what is new.
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    cargo fetch --locked
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --offline -p parq-server --bin parq \
    && install -D -m 0755 target/release/parq /out/parq

# distroless/cc: no shell, no package manager; `nonroot` is uid/gid 65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/parq /usr/local/bin/parq
USER 65532:65532
ENV PARQ_BIND=0.0.0.0:8080 \
    PARQ_LOG_FORMAT=json
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/parq"]
CMD ["serve"]
