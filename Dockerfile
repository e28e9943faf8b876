# syntax=docker/dockerfile:1
# Production image for supply-monitor: compiles the TypeScript to dist/ and runs
# `node dist/src/main.js [migrate|api|worker|all]` as the unprivileged `node` user.
# Used by docker-compose.yml (services migrate, api, worker); defaults to `all`.

ARG NODE_IMAGE=node:20.19-bookworm-slim

# ---- build: install all dependencies, compile, then drop dev dependencies ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app

# Dependencies first, so this layer is reused until package*.json change.
# patches/ holds fixes to dependencies, applied by patch-package when npm ci runs postinstall.
COPY package.json package-lock.json ./
COPY patches ./patches
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund

# Sources (filtered by .dockerignore). COPY . . rather than one COPY per folder:
# a folder git does not track yet (e.g. an empty jobs/) would make COPY fail.
COPY . .
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund

# ---- runtime: only production node_modules, compiled code and migrations ----
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production \
    PORT=4000
WORKDIR /app

# Code stays root-owned (read-only for the app); only the PGlite data folder,
# used when DATABASE_URL is unset, is writable by `node`.
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
RUN mkdir -p /app/.data && chown node:node /app/.data

USER node
EXPOSE 4000

# Liveness only (/healthz); slim images have no curl, so use Node's built-in fetch.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 4000) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["node", "dist/src/main.js"]
CMD ["all"]
