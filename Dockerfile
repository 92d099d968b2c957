# syntax=docker/dockerfile:1
#
# One image for every app of the control plane; the container's command picks the app:
#
#   docker build -t lcp .
#   docker run lcp apps/licensing/dist/main.js      # or signing-keys, audit, fleet-sweep, console
#
# Three stages: `deps` installs the production dependencies (better-sqlite3 compiles here when no
# prebuilt binary fits), `build` compiles every workspace and the console's web assets, and
# `runtime` holds only those two results on a slim Node 20, run as a non-root user. Nothing is
# written inside the image at run time (a read-only root filesystem works): state lives in
# PostgreSQL, and DATA_DIR is a mounted volume, needed only for SQLite.
#
# test/e2e/production-image.e2e.test.ts assembles the `runtime` stage from this file (its COPY,
# ENV, WORKDIR, USER and ENTRYPOINT lines) and starts every app from it: keep to those
# instructions there, one source path per COPY.

ARG NODE_IMAGE=node:20.20-bookworm-slim

FROM ${NODE_IMAGE} AS toolchain
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
COPY apps/audit/package.json apps/audit/
COPY apps/console/package.json apps/console/
COPY apps/fleet-sweep/package.json apps/fleet-sweep/
COPY apps/licensing/package.json apps/licensing/
COPY apps/signing-keys/package.json apps/signing-keys/
COPY libs/appliance-sdk/package.json libs/appliance-sdk/
COPY libs/domain/package.json libs/domain/
COPY libs/persistence/package.json libs/persistence/
COPY libs/pki/package.json libs/pki/
COPY libs/proto/package.json libs/proto/
COPY libs/rpc/package.json libs/rpc/
COPY libs/service/package.json libs/service/
COPY libs/testing/package.json libs/testing/
COPY libs/tokens/package.json libs/tokens/
COPY tools/package.json tools/

FROM toolchain AS deps
RUN npm ci --omit=dev --no-audit --no-fund

FROM toolchain AS build
RUN npm ci --no-audit --no-fund
COPY . .
RUN npm run build

FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
ENV DATA_DIR=/var/lib/lcp
ENV HOST=0.0.0.0
WORKDIR /app
COPY --from=deps /app/node_modules node_modules
COPY --from=build /app/package.json package.json
COPY --from=build /app/libs/domain/package.json libs/domain/package.json
COPY --from=build /app/libs/domain/dist libs/domain/dist
COPY --from=build /app/libs/persistence/package.json libs/persistence/package.json
COPY --from=build /app/libs/persistence/dist libs/persistence/dist
COPY --from=build /app/libs/pki/package.json libs/pki/package.json
COPY --from=build /app/libs/pki/dist libs/pki/dist
COPY --from=build /app/libs/proto/package.json libs/proto/package.json
COPY --from=build /app/libs/proto/dist libs/proto/dist
COPY --from=build /app/libs/rpc/package.json libs/rpc/package.json
COPY --from=build /app/libs/rpc/dist libs/rpc/dist
COPY --from=build /app/libs/service/package.json libs/service/package.json
COPY --from=build /app/libs/service/dist libs/service/dist
COPY --from=build /app/libs/tokens/package.json libs/tokens/package.json
COPY --from=build /app/libs/tokens/dist libs/tokens/dist
COPY --from=build /app/apps/audit/package.json apps/audit/package.json
COPY --from=build /app/apps/audit/dist apps/audit/dist
COPY --from=build /app/apps/console/package.json apps/console/package.json
COPY --from=build /app/apps/console/dist apps/console/dist
COPY --from=build /app/apps/fleet-sweep/package.json apps/fleet-sweep/package.json
COPY --from=build /app/apps/fleet-sweep/dist apps/fleet-sweep/dist
COPY --from=build /app/apps/licensing/package.json apps/licensing/package.json
COPY --from=build /app/apps/licensing/dist apps/licensing/dist
COPY --from=build /app/apps/signing-keys/package.json apps/signing-keys/package.json
COPY --from=build /app/apps/signing-keys/dist apps/signing-keys/dist
# The `node` user of the official image (uid 1000); manifests also run as non-root.
USER 1000:1000
ENTRYPOINT ["node", "--enable-source-maps"]
CMD ["apps/licensing/dist/main.js"]
