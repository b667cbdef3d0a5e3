#!/usr/bin/env bash
# What `make compose-test` needs on the machine, installed when absent: a
# running Docker engine (Debian's docker.io, started here when there is no
# init system to start it), the compose v2 CLI plugin (built from the Go
# module proxy, cached under bin/), and debootstrap and busybox for the
# registry stand-ins (standins.sh). Prints how long each part took.
set -euo pipefail
cd "$(dirname "$0")/../.."
COMPOSE_VERSION=${COMPOSE_VERSION:-v2.40.3}
export DEBIAN_FRONTEND=noninteractive
log() { echo "compose-test setup: $*" >&2; }
mkdir -p bin

apt_updated=0
apt_install() {
	if [ "$apt_updated" = 0 ]; then apt-get update -qq; apt_updated=1; fi
	apt-get install -y -qq "$@" >/dev/null
}

SECONDS=0
if ! docker info >/dev/null 2>&1; then
	if ! command -v dockerd >/dev/null 2>&1; then
		log "installing Docker's engine from Debian (docker.io)"
		apt_install docker.io
	fi
	if ! docker info >/dev/null 2>&1; then
		log "starting dockerd (log: bin/dockerd.log)"
		nohup dockerd >bin/dockerd.log 2>&1 &
		for _ in $(seq 1 120); do
			docker info >/dev/null 2>&1 && break
			sleep 0.5
		done
		docker info >/dev/null 2>&1 || { tail -n 20 bin/dockerd.log >&2; log "dockerd did not come up"; exit 1; }
	fi
fi
log "engine $(docker version -f '{{.Server.Version}}') ready (${SECONDS}s)"

SECONDS=0
if ! docker compose version >/dev/null 2>&1; then
	plugin=bin/docker-compose-$COMPOSE_VERSION
	if [ ! -x "$plugin" ]; then
		# go install refuses the module (its go.mod has exclude directives):
		# build its cmd package as the main module, from the module cache.
		log "building the compose plugin $COMPOSE_VERSION from the module proxy"
		src=$(cd /tmp && GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
			sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
		work=$(mktemp -d)
		cp -r "$src/." "$work"
		chmod -R u+w "$work"
		(cd "$work" && GOWORK=off CGO_ENABLED=0 go build -trimpath \
			-ldflags="-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
			-o "$OLDPWD/$plugin.tmp" ./cmd)
		mv "$plugin.tmp" "$plugin"
		rm -rf "$work"
	fi
	mkdir -p ~/.docker/cli-plugins
	cp "$plugin" ~/.docker/cli-plugins/docker-compose
fi
log "$(docker compose version) ready (${SECONDS}s)"

# The stand-ins' tools, needed only when an image cannot be pulled; cheap.
missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
	SECONDS=0
	apt_install "${missing[@]}"
	log "installed ${missing[*]} (${SECONDS}s)"
fi
