# newsbot container image.
#
#   docker build -t newsbot .
#   docker run -d --name newsbot --env-file .env -v newsbot-data:/app/data \
#     -v newsbot-backups:/app/backups --read-only --tmpfs /tmp --cap-drop ALL \
#     --security-opt no-new-privileges newsbot
#
# Two stages: "build" creates the virtualenv from the hash-locked requirements-prod.txt; the
# final stage holds only that virtualenv and bot/ (no tests, no dev tools, no compilers, no
# pip cache). The same base is used for both stages, so the venv's interpreter links stay
# valid. Python is called through PATH, never by absolute path, so the official
# python:3.11-slim-bookworm (python in /usr/local/bin) and a Debian-based stand-in
# (python in /usr/bin) both work.
# Pin a digest for reproducible builds: --build-arg PYTHON_IMAGE=python:3.11-slim-bookworm@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
COPY requirements-prod.txt ./
# --require-hashes: every package, transitive ones included, must match the lock file.
# pip and setuptools are removed from the venv afterwards: nothing needs them at run time.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/python -m pip install --no-cache-dir --require-hashes -r requirements-prod.txt \
    && /opt/venv/bin/python -m pip uninstall --yes pip setuptools

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="newsbot" \
      org.opencontainers.image.description="Async Telegram news-aggregator bot (RSS/Atom digests)" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.base.name="python:3.11-slim-bookworm" \
      org.opencontainers.image.licenses="NOASSERTION"

# DATA_DIR/BACKUP_DIR are the two volumes; HEALTH_HOST=0.0.0.0 so `docker run -p` can publish
# the health port (the healthcheck itself talks to 127.0.0.1). The root filesystem can be
# read-only: no bytecode is written, and nothing else is written outside the volumes and /tmp.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    PYTHONPATH=/app \
    HEALTH_HOST=0.0.0.0 \
    HEALTH_PORT=8080 \
    DATA_DIR=/app/data \
    BACKUP_DIR=/app/backups

# A fixed uid/gid (10001) so that a bind-mounted host directory can be chowned to match:
#   sudo chown 10001:10001 /srv/newsbot/data /srv/newsbot/backups
# The data directories are the only places the bot may write: 0700, owned by botuser.
RUN groupadd --system --gid 10001 botuser \
    && useradd --system --uid 10001 --gid botuser --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin botuser \
    && mkdir -p /app/data /app/backups \
    && chown botuser:botuser /app/data /app/backups \
    && chmod 0700 /app/data /app/backups

COPY --from=build /opt/venv /opt/venv
# Application code is owned by root and only readable by botuser, whatever the modes were in
# the build context; it is byte-compiled here because the running bot cannot write there.
COPY bot/ /app/bot/
RUN chmod -R u=rwX,go=rX /app/bot \
    && python -m compileall -q /app/bot

WORKDIR /app
VOLUME ["/app/data", "/app/backups"]
EXPOSE 8080
# DL3066 (info) wants a numeric USER: the name is kept because it maps to the fixed uid 10001
# created above, and `docker inspect` then reads as intended; orchestrators that must verify
# non-root from the number (Kubernetes runAsNonRoot) can set runAsUser: 10001.
# hadolint ignore=DL3066
USER botuser

# Unhealthy after 3 failed checks 30 s apart (each given 10 s); see docs/monitoring.md.
HEALTHCHECK --interval=30s --timeout=10s --start-period=20s --retries=3 \
    CMD ["python", "-m", "bot.healthcheck"]
# The bot finishes in-flight work and flushes its state on SIGTERM (docker stop).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m", "bot"]
