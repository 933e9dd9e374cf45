# syntax=docker/dockerfile:1
# The relay image: relayd (and relayctl) compiled to JavaScript, on Node 24, as a non-root user.
#
#   docker build -t registry.example.com/relayctl/relayd:0.1.0 .
#   docker push registry.example.com/relayctl/relayd:0.1.0
#
# Both stages use the same base, so the native addon (node-mbed-dtls) is built against the Node and the C
# library it runs on. Pin a digest instead of the tag with --build-arg NODE_IMAGE=node:24.21.0-trixie-slim@sha256:...
# (tests check the tag's Node version against package-lock.json's).
ARG NODE_IMAGE=node:24.21.0-trixie-slim

FROM ${NODE_IMAGE} AS build
# node-gyp's toolchain, for node-mbed-dtls (and msgpackr-extract where no prebuilt binary fits).
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY api ./api
COPY lib ./lib
COPY pki ./pki
COPY client ./client
COPY relay ./relay
COPY orchestrator ./orchestrator
COPY cli ./cli
COPY loadgen ./loadgen
# JavaScript into dist/ (no type stripping at run time), then only the production dependencies. The addon links
# mbedtls statically: its sources and object files are not needed at run time.
RUN npm run build \
 && npm prune --omit=dev --no-audit --no-fund \
 && rm -rf node_modules/node-mbed-dtls/mbedtls node_modules/node-mbed-dtls/build/Release/obj.target \
      node_modules/node-mbed-dtls/build/Release/*.a

FROM ${NODE_IMAGE}
# Nothing here runs npm: take it out, and with it most of what image scanners report.
RUN rm -rf /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/corepack \
      /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
# Any numeric non-root user: Kubernetes' runAsNonRoot can only verify a numeric one (manifests use 65532).
USER 65532:65532
EXPOSE 5684/udp 5685/udp 8443/tcp 8080/tcp
# Exec form: no shell at run time. The flag is relay/runtime-flags.ts's (a small young generation).
# relayctl runs from the same image: command ["node", "/app/dist/cli/main.js"].
ENTRYPOINT ["node", "--max-semi-space-size=4", "/app/dist/relay/main.js"]
