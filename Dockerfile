# sfstripe daemon image. Without SFSTRIPE_DATABASE_URL it runs an embedded PostgreSQL whose data
# lives in SFSTRIPE_DATA_DIR: mount a volume there, or the event log dies with the container.
FROM python:3.12-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY state state
COPY stream stream
COPY handlers handlers
COPY metrics metrics
COPY sfstripe sfstripe
RUN python -m venv /opt/sfstripe && /opt/sfstripe/bin/pip install --no-cache-dir .

FROM python:3.12-slim
RUN useradd --create-home --uid 10001 sfstripe \
    && mkdir -p /var/lib/sfstripe && chown sfstripe /var/lib/sfstripe
COPY --from=build /opt/sfstripe /opt/sfstripe
ENV PATH=/opt/sfstripe/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    SFSTRIPE_HTTP_HOST=0.0.0.0 \
    SFSTRIPE_HTTP_PORT=8080 \
    SFSTRIPE_METRICS_HOST=0.0.0.0 \
    SFSTRIPE_METRICS_PORT=9464 \
    SFSTRIPE_DATA_DIR=/var/lib/sfstripe \
    SFSTRIPE_LOG_FORMAT=json
USER sfstripe
WORKDIR /home/sfstripe
VOLUME ["/var/lib/sfstripe"]
EXPOSE 8080 9464
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SFSTRIPE_HTTP_PORT', '8080'), timeout=4)"
ENTRYPOINT ["sfstripe"]
CMD ["run"]
