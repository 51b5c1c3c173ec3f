# A local stand-in for prom/prometheus, built by scripts/docker-base-images.sh only where the
# real one cannot be pulled: Debian bookworm's prometheus with upstream's paths and user.
FROM queuectl-local/debian:bookworm
# Unpinned: the stand-in follows Debian bookworm's current packages.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends prometheus wget \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER 65534:65534
WORKDIR /prometheus
VOLUME ["/prometheus"]
EXPOSE 9090
LABEL org.opencontainers.image.description="Local stand-in for prom/prometheus (Debian bookworm prometheus)"
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
