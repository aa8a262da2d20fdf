# syntax=docker/dockerfile:1
# btlab as a container: `docker build -t btlab:local .` then `docker run --rm btlab:local --help`.
# With the compose stack: docker compose -f deploy/docker-compose.yml run --rm btlab --help
#
# Base image: pinned by digest (a tag can be re-pushed; the digest cannot). This digest of python:3.11-slim is the one
# public projects pin (it could not be pulled from here: no registry access). To move to a newer patch release:
#   docker buildx imagetools inspect python:3.11-slim      # -> Digest: sha256:...
#   docker build --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:<digest> -t btlab:local .
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

# ---- build: dependencies from the hash-locked requirements, then btlab itself, into /opt/venv ----------------------
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /opt/btlab
RUN python -m venv /opt/venv
# deploy/requirements.lock: every dependency pinned with its sha256 hashes (regenerate with `make lock`); pip
# refuses any file whose hash is not listed.
COPY deploy/requirements.lock ./
RUN /opt/venv/bin/pip install --require-hashes --no-deps -r requirements.lock
COPY pyproject.toml README.md ./
COPY src ./src
# btlab itself (its dependencies are all installed above; only the build backend is fetched for this step).
RUN /opt/venv/bin/pip install --no-deps .

# ---- runtime: the venv only, a non-root user, no compiler, no pip cache --------------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
# uid/gid of the non-root user that runs btlab (match your own to own the files it writes to mounted folders).
ARG BTLAB_UID=1000
ARG BTLAB_GID=1000
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
# -o: accept a uid/gid that the base image already uses (e.g. gid 20 from macOS).
RUN groupadd -o --gid "${BTLAB_GID}" btlab \
 && useradd -o --uid "${BTLAB_UID}" --gid "${BTLAB_GID}" --create-home --shell /usr/sbin/nologin btlab \
 && mkdir -p /work \
 && chown btlab:btlab /work
COPY --from=build /opt/venv /opt/venv
# numeric, so the host and Kubernetes-style runtimes can check it is not root
USER ${BTLAB_UID}:${BTLAB_GID}
WORKDIR /work
ENTRYPOINT ["btlab"]
CMD ["--help"]
