# cc-monitor: the worker image (and every other cc-monitor command).
#   docker build -t cc-monitor .
#   docker run --rm -e CC_MONITOR_KAFKA__BOOTSTRAP_SERVERS=kafka:9092 -p 9108:9108 cc-monitor
FROM python:3.11-slim

WORKDIR /app
COPY pyproject.toml README.md ./
COPY cc_monitor ./cc_monitor
COPY streams ./streams
COPY alerts ./alerts
COPY kpis ./kpis
COPY docs/runbooks.md ./docs/runbooks.md
RUN pip install --no-cache-dir . && useradd --system --uid 10001 cc-monitor \
    && install -d -o cc-monitor /var/lib/cc-monitor/archive

USER cc-monitor
ENV CC_MONITOR_WORKER__WEB_BIND=0.0.0.0 \
    CC_MONITOR_WORKER__WEB_PORT=9108 \
    CC_MONITOR_WORKER__DATA_DIR=/tmp/cc-monitor
EXPOSE 9108
ENTRYPOINT ["cc-monitor"]
CMD ["worker"]
