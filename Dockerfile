# An example image for imagegate (untested here: no container runtime on the dev machines).
#   docker build -t imagegate .
#   docker run -p 8080:8080 -e IMAGEGATE_ADMIN_KEY=sk-admin-… -v imagegate-data:/data imagegate
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    IMAGEGATE_HOST=0.0.0.0 \
    IMAGEGATE_PORT=8080 \
    IMAGEGATE_DATA_DIR=/data

WORKDIR /app
COPY pyproject.toml README.md ./
COPY imagegate ./imagegate
RUN pip install --no-cache-dir .

RUN useradd --system --home /data imagegate && mkdir -p /data && chown imagegate /data
USER imagegate
VOLUME /data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)" || exit 1
CMD ["imagegate", "serve", "--workers", "2"]
