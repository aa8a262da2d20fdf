# syntax=docker/dockerfile:1
# btlab as a container: `docker build -t btlab:local .` then `docker run --rm btlab:local --help`.
# With the compose stack: docker compose -f deploy/docker-compose.yml run --rm btlab --help
FROM python:3.11-slim

# uid/gid of the non-root user that runs btlab (match your own to own the files it writes to mounted folders).
ARG BTLAB_UID=1000
ARG BTLAB_GID=1000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# -o: accept a uid/gid that the base image already uses (e.g. gid 20 from macOS).
RUN groupadd -o --gid "${BTLAB_GID}" btlab \
 && useradd -o --uid "${BTLAB_UID}" --gid "${BTLAB_GID}" --create-home --shell /usr/sbin/nologin btlab \
 && mkdir -p /work \
 && chown btlab:btlab /work

WORKDIR /opt/btlab

# Dependencies first, from pyproject.toml alone, so that editing the source does not reinstall them.
COPY pyproject.toml README.md ./
RUN mkdir -p src/btlab \
 && touch src/btlab/__init__.py \
 && pip install . \
 && pip uninstall -y btlab \
 && rm -rf src

# Then the package itself.
COPY src ./src
RUN pip install --no-deps . \
 && rm -rf /opt/btlab/src /opt/btlab/build

USER btlab
WORKDIR /work
ENTRYPOINT ["btlab"]
CMD ["--help"]
