# syntax=docker/dockerfile:1.7
# One image for every role: `jobqueue worker APP_REF`, `jobqueue producer`, `jobqueue operator`.
#
#   docker build -t jobqueue:dev .                 # the runtime image (last stage)
#   docker build --target dev -t jobqueue:tilt .   # Tilt's image: sources writable for live update
#
# It is also the base of your own worker image: copy your handlers into /app (on
# PYTHONPATH) and the operator runs `jobqueue worker APP_REF` from it. A complete example
# with its own dependencies: examples/myapp/Dockerfile.
#
#   FROM ghcr.io/jobqueue/jobqueue:0.2.0
#   COPY myapp.py /app/
#   CMD ["worker", "myapp:app"]
#
# The builder resolves the locked dependencies with uv into /opt/venv and installs the
# workspace members as ordinary (non-editable) wheels; the runtime stage copies only that
# virtualenv onto a slim Python, so no compiler, uv or pip reaches production.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13

FROM ${UV_IMAGE} AS uv

FROM ${PYTHON_IMAGE} AS builder
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src
# Dependencies first, from the lock file alone: this layer survives source edits.
COPY pyproject.toml uv.lock VERSION ./
COPY core/pyproject.toml core/pyproject.toml
COPY worker/pyproject.toml worker/pyproject.toml
COPY producer/pyproject.toml producer/pyproject.toml
COPY operator/pyproject.toml operator/pyproject.toml
COPY cli/pyproject.toml cli/pyproject.toml
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace
# Then the workspace members themselves, built as wheels (not editable links to /src).
COPY core/ core/
COPY worker/ worker/
COPY producer/ producer/
COPY operator/ operator/
COPY cli/ cli/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM ${PYTHON_IMAGE} AS base
# pip, setuptools and wheel are build tooling the runtime never needs.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel \
    && groupadd --gid 10001 jobqueue \
    && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin jobqueue \
    && mkdir /app
COPY --from=builder /opt/venv /opt/venv
# /app holds the worker apps of images built FROM this one (read-only at run time).
ENV PATH="/opt/venv/bin:${PATH}" \
    PYTHONPATH=/app \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /tmp
# 8080: producer API / operator health; 8081: worker health and metrics.
EXPOSE 8080 8081
ENTRYPOINT ["jobqueue"]
CMD ["--help"]

FROM base AS dev
# Tilt's live update copies changed sources into site-packages as the container user.
RUN chown -R 10001:10001 /opt/venv/lib/python3.11/site-packages/jobqueue
USER 10001:10001

FROM base AS runtime
USER 10001:10001
