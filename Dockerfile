# syntax=docker/dockerfile:1
# offramp's production image (docs/deploy/README.md, "Container image"):
#   docker build -t offramp .
#   docker run --rm -p 8080:8080 -p 8081:8081 offramp
# Two stages. The builder installs every dependency and compiles dist/; the runtime installs only
# the production dependencies next to that dist/, adds the bundled prepared models and the SLO
# file, and runs as the unprivileged `node` user. No container engine runs where the tests do, so
# test/production-install.test.ts runs this file's own steps in a clean folder: keep RUN commands
# relative to WORKDIR and within the instructions that test reads.

FROM node:20-bookworm-slim AS builder
WORKDIR /build
COPY package.json package-lock.json .npmrc tsconfig.json tsconfig.build.json ./
COPY bin/prepare.js bin/
COPY src/ src/
COPY ramps/ ramps/
COPY tuner/ tuner/
# `prepare` (bin/prepare.js) builds dist/ during the install: the build tools are installed
# here. .npmrc keeps onnxruntime-node from downloading anything at install time. The npm cache is
# a build cache mount, so it never lands in a layer and a rebuild reinstalls from it.
RUN --mount=type=cache,target=/root/.npm npm ci --no-audit --no-fund

FROM node:20-bookworm-slim AS runtime
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
COPY bin/prepare.js bin/
# dist/ must be in place before the install: without the build tools, `prepare` checks for it and
# fails the install when it is missing.
COPY --from=builder /build/dist dist/
# The production dependencies only. onnxruntime-node ships its native library for every platform;
# only this one's is kept (~220 MB less). `offramp` goes on PATH through node_modules/.bin, where
# npm puts the dependencies' own commands.
RUN --mount=type=cache,target=/root/.npm npm ci --omit=dev --no-audit --no-fund \
    && find node_modules/onnxruntime-node/bin -mindepth 2 -maxdepth 2 ! -name linux -exec rm -rf {} + \
    && find node_modules/onnxruntime-node/bin -mindepth 3 -maxdepth 3 -path '*/linux/*' ! -name "$(node -p process.arch)" -exec rm -rf {} + \
    && mkdir -p node_modules/.bin \
    && ln -s ../../bin/offramp.js node_modules/.bin/offramp
COPY bin/offramp.js bin/
# Read at run time from the package root (src/config/package-root.ts): the gRPC service definition.
COPY src/grpc/grpc_service.proto src/grpc/
# The bundled prepared models, served when the SLO file lists no models. Mount your own elsewhere
# (/models is the documented place) and list them in the SLO file.
COPY models/fmnist-resnet models/fmnist-resnet/
COPY models/spam-bert models/spam-bert/
COPY docs/deploy/container/slo.yaml /etc/offramp/slo.yaml
ENV PATH=/app/node_modules/.bin:$PATH \
    OFFRAMP_CONFIG=/etc/offramp/slo.yaml
# The node images' unprivileged user (uid 1000). Nothing under /app is writable by it: offramp
# only reads its package and the models.
USER node
# KServe v2 HTTP/REST and gRPC (server.http_port and server.grpc_port).
EXPOSE 8080 8081
# Ready means every model is loaded and the server is not draining. Node itself asks, since slim
# images have no curl; the port follows OFFRAMP_HTTP_PORT like the server's does.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 \
    CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.OFFRAMP_HTTP_PORT || 8080) + '/v2/health/ready', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# SIGTERM starts the graceful drain (server.drain_timeout_ms, 30 s by default): give `docker stop`
# (--time) or the pod's terminationGracePeriodSeconds more than that.
STOPSIGNAL SIGTERM
# The SLO file is OFFRAMP_CONFIG's (above): mount another over /etc/offramp/slo.yaml, or point
# OFFRAMP_CONFIG elsewhere.
CMD ["offramp", "serve"]
