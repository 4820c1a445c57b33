# Prometheus from Debian's `prometheus` package, for machines that cannot pull prom/prometheus.
# Built by build-prometheus-image.sh, whose context holds the package's files in pkg/. It
# behaves like the official image where docker-compose.yml relies on it: prometheus is the
# entrypoint, data in /prometheus, config in /etc/prometheus, runs as nobody (65534).
ARG BASE_IMAGE=ganserve-base:bookworm
FROM ${BASE_IMAGE}
COPY pkg/usr/bin/prometheus pkg/usr/bin/promtool /bin/
RUN mkdir -p /etc/prometheus /prometheus && chown 65534:65534 /prometheus
USER 65534:65534
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
ENTRYPOINT ["/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
