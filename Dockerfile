# One image with the three commands: graphinator, tableinator, extractor.
# Build stage: wheels for the project and its pinned dependencies.
FROM python:3.11-slim-bookworm AS build
# A C compiler for the mypyc-compiled modules (setup.py); the runtime stage has none.
RUN apt-get update && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py requirements.lock README.md ./
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
# The extractor's state folder: a new named volume mounted here starts owned by the user.
RUN mkdir /state && chown pipeline /state
USER pipeline
# No HEALTHCHECK here: one image runs three commands and only the consumers serve
# /health (graphinator on 8001, tableinator on 8002 unless HEALTH_PORT says otherwise);
# docker-compose.yml defines each consumer's healthcheck on its own port.
CMD ["graphinator"]
