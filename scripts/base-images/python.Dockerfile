# A local stand-in for python:3.11-slim, built by scripts/docker-base-images.sh only where
# the real image cannot be pulled: Debian bookworm's own Python 3.11 on a minbase rootfs.
FROM queuectl-local/debian:bookworm
# Unpinned: the stand-in follows Debian bookworm's current packages.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3 python3-venv \
    && rm -rf /var/lib/apt/lists/* \
    && ln -s /usr/bin/python3 /usr/local/bin/python \
    && ln -s /usr/bin/python3 /usr/local/bin/python3
ENV LANG=C.UTF-8
LABEL org.opencontainers.image.description="Local stand-in for python:3.11-slim (Debian bookworm python3)"
CMD ["python3"]
