# One image with the three commands: graphinator, tableinator, extractor.
# Build stage: wheels for the project and its pinned dependencies.
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml requirements.lock README.md ./
COPY common ./common
COPY graphinator ./graphinator
COPY tableinator ./tableinator
COPY extractor ./extractor
RUN pip wheel --no-cache-dir --wheel-dir /wheels -c requirements.lock .

# Runtime stage: no compilers, no pip cache, a non-root user.
FROM python:3.11-slim-bookworm
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 LOG_FORMAT=json
RUN useradd --system --uid 10001 --home-dir /app --shell /usr/sbin/nologin pipeline
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links /wheels discogs-pipeline \
    && rm -rf /wheels
COPY data/samples /app/data/samples
USER pipeline
# HEALTH_PORT is set per service (graphinator 8001, tableinator 8002 by default).
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ.get(\"HEALTH_PORT\", \"8000\")}/health', timeout=2)"
CMD ["graphinator"]
