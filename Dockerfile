# One image for the gateway and the three sample backends; the command picks which one runs.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1
# Where the backends keep their SQLite files when no --db is given: on the volume, not in the container layer.
ENV OPS_DB=/data/ops.sqlite3 \
    HR_DB=/data/hr.sqlite3 \
    FINANCE_DB=/data/finance.sqlite3

# Built outside the working directory: `python -m backends.x` puts the working directory first on sys.path,
# and the installed package, not a stray source tree, is what should run.
COPY pyproject.toml README.md LICENSE /tmp/src/
COPY gateway/ /tmp/src/gateway/
COPY backends/ /tmp/src/backends/
RUN pip install --no-cache-dir /tmp/src \
    && rm -rf /tmp/src

# A fixed uid, so files on the volume keep a known owner across rebuilds.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --shell /usr/sbin/nologin app \
    && mkdir /data \
    && chown app:app /data
# Declared after the chown: a new named volume is seeded with this directory's owner.
VOLUME ["/data"]
WORKDIR /data
USER app:app

EXPOSE 8000 8001 8002 8003
CMD ["mcp-gateway", "serve", "--host", "0.0.0.0", "--port", "8000", "--allow-unauthenticated"]
