# syntax=docker/dockerfile:1
#
# Container image for pingaway-exporter.
#
#   docker build -t pingaway-exporter \
#     --build-arg VERSION="$(sed -n 's/^__version__ = "\(.*\)"/\1/p' exporter/pingaway_exporter/__init__.py)" \
#     --build-arg SOURCE_URL="$(git remote get-url origin)" .
#
# Needs BuildKit (the default builder since Docker 23; `podman build` and
# `buildah` understand it too): the runtime stage bind-mounts the wheels from
# the build stage instead of copying them, so they never land in a layer.
#
# Secrets are NOT baked into the image, and no ENV here names a token. Mount
# the API token (a JWT) as a file at run time and point the exporter at it;
# the file must be readable by uid 10001:
#
#   docker run --rm -p 10035:10035 \
#     -v "$PWD/pingaway_token:/run/secrets/pingaway_token:ro" \
#     -e PINGAWAY_TOKEN_FILE=/run/secrets/pingaway_token \
#     pingaway-exporter
#
# With Compose or Swarm, a secret named pingaway_token lands at
# /run/secrets/pingaway_token by itself; set PINGAWAY_TOKEN_FILE to that path
# (or pass --pingaway.token-file=/run/secrets/pingaway_token). The exporter
# re-reads the file when it changes, so a rotated token needs no restart.
# To try the image without an account: `docker run --rm -p 10035:10035 pingaway-exporter --demo`.

############################################################################
# Stage 1: build the wheel of this project and collect its dependencies as
# wheels, so the runtime stage installs offline and needs no build tools.
############################################################################
FROM python:3.12-slim-bookworm AS build

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src

COPY pyproject.toml README.md ./
COPY exporter/ exporter/

# First our own wheel, then every dependency as a wheel beside it. Most are
# pure Python, but PyYAML, msgspec and bcrypt are compiled: they come as
# prebuilt manylinux wheels for this base's glibc and CPU (amd64 and arm64
# have them). --only-binary keeps any sdist, and the compiler it would need,
# out: a platform without such a wheel fails here instead of building one.
RUN pip wheel --no-deps --wheel-dir /wheels . \
 && pip wheel --only-binary=:all: --wheel-dir /wheels /wheels/pingaway_exporter-*.whl

############################################################################
# Stage 2: runtime. Same slim base, no compiler, no sources, no wheels left
# behind; runs as an unprivileged user.
############################################################################
FROM python:3.12-slim-bookworm AS runtime

# VERSION should match pingaway_exporter.__version__ (a test checks the
# default); SOURCE_URL is the repository's URL, passed in by whoever builds.
ARG VERSION=0.1.0
ARG SOURCE_URL=""

LABEL org.opencontainers.image.title="pingaway-exporter" \
      org.opencontainers.image.description="Prometheus exporter for the Pingaway cloud switchboard: who is available, live and ringing calls, queue staffing" \
      org.opencontainers.image.source="${SOURCE_URL}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}"

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# The only package named is our own wheel, straight from the build stage with
# --no-index: its dependencies resolve from the wheels collected there and
# nothing is fetched from an index. The `--help` run fails the build if the
# entry point or an import is broken.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    groupadd --gid 10001 pingaway \
 && useradd --uid 10001 --gid 10001 --no-create-home \
        --home-dir /nonexistent --shell /usr/sbin/nologin pingaway \
 && pip install --no-cache-dir --no-index --find-links=/wheels \
        /wheels/pingaway_exporter-*.whl \
 && pingaway-exporter --help > /dev/null

USER 10001:10001

EXPOSE 10035

# slim images have no curl or wget: the probe is a standard-library module of
# the package. It asks /-/healthy over HTTP and, when that fails, over HTTPS
# (TLS on through --web.config.file; /-/healthy needs no Basic auth). With
# client_auth_type RequireAndVerifyClientCert no probe without a client
# certificate gets in: run such a container with --no-healthcheck, or your
# own --health-cmd. The URL assumes the default --web.listen-address
# (:10035); pass your port the same way if you change it, e.g.
#   --health-cmd 'python -m pingaway_exporter.healthcheck http://127.0.0.1:9999/-/healthy'
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-m", "pingaway_exporter.healthcheck", "http://127.0.0.1:10035/-/healthy"]

# The exporter handles SIGTERM itself (it is PID 1 here), so `docker stop`
# shuts it down cleanly without an init process.
ENTRYPOINT ["pingaway-exporter"]
CMD []
