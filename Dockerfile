# vinom's container image: `docker build -t vinom:0.1.0 .` (docs/kubernetes.md).
#
# Stage 1 builds the wheels: vinom's own, with the game host's packet path compiled
# by mypyc (setup.py, COMPILED; a C compiler is needed for it), and those of its
# dependencies. Stage 2 is the runtime: the slim Python image, the wheels installed
# from stage 1 with no index, no compiler, run as an unprivileged user.
#
# The base is pinned to an exact Python release; pin it by digest too
# (python:3.11.13-slim-bookworm@sha256:...) where builds must be reproducible.

FROM python:3.11.13-slim-bookworm AS build

# gcc and the C headers for mypyc's output; the build stage is thrown away.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# With the extras a deployment of deploy/ may use (setup.py, extras_require): the
# Redis wing (every overlay is a cluster), PostgreSQL accounts (a cluster's lobbies
# share them) and WebTransport; not the boards' syntax check, a game developer's.
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels ".[cluster,postgres,webtransport]"


FROM python:3.11.13-slim-bookworm AS runtime

# An unprivileged user of its own, with a fixed id (the manifests' runAsUser).
RUN groupadd --system --gid 10001 vinom \
    && useradd --system --uid 10001 --gid vinom --home-dir /var/lib/vinom --create-home vinom

# Twisted's plugin cache is written here, as root: site-packages is not the vinom user's,
# and a cache out of date would be rebuilt (and fail to be written, a line each) at
# every start (docs/operations.md).
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels \
        "vinom[cluster,postgres,webtransport]==0.1.0" \
    && rm -rf /wheels \
    && python -c "from twisted.plugin import IPlugin, getPlugins; list(getPlugins(IPlugin))"

USER 10001:10001
WORKDIR /var/lib/vinom
ENV PYTHONUNBUFFERED=1

# The lobby (TLS), the web server (WebSocket lobby and /game), the operations
# endpoint (/health, /ready, /metrics), and the game hosts' UDP ports.
EXPOSE 7350/tcp 7380/tcp 7390/tcp 7400-7499/udp

# The operations endpoint answers 200 on /health while the process and its game
# hosts answer (docs/operations.md); Kubernetes uses its own probes on the same path.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:7390/health', timeout=2).status != 200)"]

# The role (none: the whole server in one process) and its options are arguments:
# `docker run vinom:0.1.0 host --redis ...` replaces the whole CMD. The operations endpoint listens beyond loopback in a container,
# so that the kubelet's probes reach it; /metrics and /status want --ops-token-file.
ENTRYPOINT ["twistd", "-n", "--pidfile=", "vinom"]
CMD ["--ops-port", "tcp:7390"]
