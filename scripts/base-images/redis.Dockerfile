# A local stand-in for the redis image, built by scripts/docker-base-images.sh only where the
# real one cannot be pulled: Debian bookworm's redis-server 7.0, data in /data like upstream.
FROM queuectl-local/debian:bookworm
# Unpinned: the stand-in follows Debian bookworm's current packages.
# hadolint ignore=DL3008
RUN groupadd --system --gid 999 redis \
    && useradd --system --uid 999 --gid 999 --home-dir /data --no-create-home redis \
    && apt-get update \
    && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir /data && chown redis:redis /data
# uid 999, as in the upstream image.
USER 999:999
WORKDIR /data
VOLUME ["/data"]
EXPOSE 6379
LABEL org.opencontainers.image.description="Local stand-in for redis (Debian bookworm redis-server)"
CMD ["redis-server"]
