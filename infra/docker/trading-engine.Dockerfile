# Trading engine image (seed task 22): the API, the engine loop and the built dashboard.
#   docker build -f infra/docker/trading-engine.Dockerfile -t trading-engine:0.1.0 .
# Build context: the repository root.

# --- dashboard -------------------------------------------------------------------------------
FROM node:20-slim AS dashboard
WORKDIR /frontend
COPY frontend/package.json frontend/package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY frontend/ ./
RUN npm run build

# --- engine ----------------------------------------------------------------------------------
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    STONKS_API_HOST=0.0.0.0 \
    STONKS_DATA_DIR=/var/lib/stonks-trading \
    MPLCONFIGDIR=/tmp/matplotlib

RUN groupadd --system --gid 10001 stonks \
 && useradd --system --uid 10001 --gid stonks --home-dir /nonexistent --no-create-home stonks \
 && mkdir -p /var/lib/stonks-trading \
 && chown stonks:stonks /var/lib/stonks-trading

WORKDIR /app
COPY pyproject.toml README.md ./
COPY services/ services/
COPY infra/migrations/ infra/migrations/
# Editable on purpose: the service finds infra/migrations/ and frontend/dist/ beside services/
# (two levels above its modules), so the code must run from /app, not from site-packages.
RUN pip install -e .
COPY --from=dashboard /frontend/dist/ frontend/dist/

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=3s --start-period=30s \
  CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"
CMD ["uvicorn", "services.trading.app:app", "--host", "0.0.0.0", "--port", "8000"]
