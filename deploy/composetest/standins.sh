#!/usr/bin/env bash
# Local stand-ins for the four registry images compose and the Dockerfile
# use, for machines that cannot pull from a registry (ours). For each image
# variable: the real image if it is present or can be pulled, else a
# stand-in built here and tagged wxlogin-standin/…. Prints the variables to
# use, one NAME=image per line, on stdout (progress goes to stderr).
#
#   GO_IMAGE       golang:1.26-bookworm        → Debian (debootstrap) + this machine's Go and CA bundle
#   RUNTIME_IMAGE  distroless/static:nonroot   → scratch + /etc/passwd (nonroot 65532), CA certificates, zoneinfo
#   NATS_IMAGE     nats:<shared's version>     → static nats-server (module proxy) + busybox (wget for the healthcheck)
#   POSTGRES_IMAGE postgres:17                 → Debian's PostgreSQL + an entrypoint honouring POSTGRES_DB/USER/PASSWORD
#
# Cache: CACHE (default bin/standins) keeps the debootstrap root filesystem
# and the nats-server binary; the images themselves stay in Docker.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=deploy/composetest
cache=${CACHE:-bin/standins}
mkdir -p "$cache"
log() { echo "standins: $*" >&2; }

# The defaults: keep in step with deploy/Dockerfile and docker-compose.yml.
nats_version=$(awk '$1 == "github.com/nats-io/nats-server/v2" {print $2}' shared/go.mod)
declare -A want=(
	[GO_IMAGE]=${GO_IMAGE:-golang:1.26-bookworm}
	[RUNTIME_IMAGE]=${RUNTIME_IMAGE:-gcr.io/distroless/static-debian12:nonroot}
	[NATS_IMAGE]=${NATS_IMAGE:-nats:${nats_version#v}-alpine}
	[POSTGRES_IMAGE]=${POSTGRES_IMAGE:-postgres:17}
)

have() { docker image inspect "$1" >/dev/null 2>&1; }
# A registry that does not answer must not stall the run: bounded pulls.
pullable() { have "$1" || timeout 30 docker pull -q "$1" >/dev/null 2>&1; }

debian() { # the Debian root filesystem, imported once
	local img=wxlogin-standin/debian:bookworm
	if ! have $img; then
		local tar=$cache/debian-bookworm.tar
		if [ ! -s "$tar" ]; then
			log "debootstrap bookworm (minbase, ca-certificates, tzdata)"
			local root
			root=$(mktemp -d)
			debootstrap --variant=minbase --include=ca-certificates,tzdata bookworm "$root" http://deb.debian.org/debian >&2
			rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
			tar -C "$root" -cf "$tar.tmp" . && mv "$tar.tmp" "$tar"
			rm -rf "$root"
		fi
		docker import "$tar" $img >/dev/null
	fi
	echo $img
}

build() { # build TAG CONTEXT_DIR [docker build args…]: DOCKER_BUILDKIT=0, no pulls
	local tag=$1 ctx=$2
	shift 2
	DOCKER_BUILDKIT=0 docker build -q -t "$tag" "$@" "$ctx" >/dev/null
}

standin_go() {
	local img=wxlogin-standin/golang:bookworm base goroot ctx
	have $img && { echo $img; return; }
	base=$(debian)
	goroot=$(go env GOROOT)
	log "golang: $base + $(go version | cut -d' ' -f3) from $goroot"
	ctx=$(mktemp -d)
	cp -a "$goroot" "$ctx/go"
	# This machine's CA bundle: the build downloads modules through the same
	# network (and any TLS-inspecting proxy) the machine trusts.
	cp /etc/ssl/certs/ca-certificates.crt "$ctx/ca-certificates.crt"
	build $img "$ctx" -f "$here/standin-go.Dockerfile" --build-arg BASE="$base"
	rm -rf "$ctx"
	echo $img
}

standin_runtime() {
	local img=wxlogin-standin/static:nonroot
	have $img && { echo $img; return; }
	log "runtime: scratch + passwd, CA certificates, zoneinfo from $(debian)"
	build $img "$here" -f "$here/standin-runtime.Dockerfile" --build-arg BASE="$(debian)"
	echo $img
}

standin_nats() {
	local img=wxlogin-standin/nats:${nats_version#v} bin=$cache/nats-server-$nats_version ctx
	have $img && { echo $img; return; }
	if [ ! -x "$bin" ]; then
		log "nats-server $nats_version from the module proxy"
		local gobin
		gobin=$(mktemp -d)
		GOBIN=$gobin CGO_ENABLED=0 GOFLAGS= go install -trimpath -ldflags='-s -w' "github.com/nats-io/nats-server/v2@$nats_version"
		mv "$gobin/nats-server" "$bin"
		rmdir "$gobin"
	fi
	ctx=$(mktemp -d)
	cp "$bin" "$ctx/nats-server"
	cp "$(command -v busybox)" "$ctx/busybox"
	build $img "$ctx" -f "$here/standin-nats.Dockerfile"
	rm -rf "$ctx"
	echo $img
}

standin_postgres() {
	local img=wxlogin-standin/postgres:bookworm
	have $img && { echo $img; return; }
	log "postgres: Debian's PostgreSQL on $(debian)"
	build $img "$here" -f "$here/standin-postgres.Dockerfile" --build-arg BASE="$(debian)"
	echo $img
}

for var in GO_IMAGE RUNTIME_IMAGE NATS_IMAGE POSTGRES_IMAGE; do
	img=${want[$var]}
	if pullable "$img"; then
		log "$var: $img"
	else
		case $var in
		GO_IMAGE) img=$(standin_go) ;;
		RUNTIME_IMAGE) img=$(standin_runtime) ;;
		NATS_IMAGE) img=$(standin_nats) ;;
		POSTGRES_IMAGE) img=$(standin_postgres) ;;
		esac
		log "$var: ${want[$var]} cannot be pulled; stand-in $img"
	fi
	echo "$var=$img"
done
