# termdeposit: the HTTP scoring API (default command) and the dashboard, in one image.
# Build: docker build -t termdeposit .      Run everything: docker compose up (see compose.yaml)
# The container runs the README's own commands (termdeposit bootstrap, termdeposit serve-api,
# streamlit run streamlit_app.py); only the listening address differs (0.0.0.0).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NUMBA_CACHE_DIR=/tmp/numba-cache \
    TERMDEPOSIT_DATA=/app/data/raw \
    TERMDEPOSIT_PROCESSED=/app/data/processed \
    TERMDEPOSIT_MODELS=/app/models \
    TERMDEPOSIT_KEY_FILE=/app/keys/signing.key \
    TERMDEPOSIT_DB_URL=sqlite:////app/data/termdeposit.db

WORKDIR /app

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --shell /usr/sbin/nologin app

# Dependencies first (pinned), so code changes do not reinstall them.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt

COPY pyproject.toml README.md ./
COPY termdeposit ./termdeposit
RUN pip install --no-cache-dir --no-deps . \
    && mkdir -p /app/data/raw /app/data/processed /app/models /app/keys \
    && chown -R app:app /app/data /app/models /app/keys \
    && chmod 700 /app/keys

COPY streamlit_app.py ./
COPY pages ./pages
COPY .streamlit ./.streamlit

USER 10001:10001

# 8000: HTTP API (/docs), 8501: dashboard. Data, models and the model signing key (kept apart
# from the models on purpose) live in volumes.
EXPOSE 8000 8501
VOLUME ["/app/data", "/app/models", "/app/keys"]

HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]

CMD ["termdeposit", "serve-api", "--host", "0.0.0.0", "--port", "8000"]
