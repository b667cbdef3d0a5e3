# wxlogin — see README.md. Every target runs across all workspace modules.
GO      ?= go
MODULES := $(shell $(GO) list -f '{{.Dir}}' -m)
PKGS    := $(addsuffix /...,$(MODULES))
# Build and test with go.work's toolchain line (a patched Go, fetched
# through the module proxy) unless the caller chose one.
export GOTOOLCHAIN ?= auto

.PHONY: test vet tidy-check build bench bench-short bench-admin gobench devstack tidy faults-long fuzz vulncheck compose-test

## test: vet, then every module's unit and integration tests with the race
## detector, against a real PostgreSQL (WXLOGIN_TEST_DATABASE_URL, else
## 127.0.0.1:5432) and an embedded NATS server.
test: vet tidy-check
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## faults-long: the fault tests (services/devstack/faults_test.go) with
## bigger bursts and longer outages; `make test` runs their short variants.
faults-long:
	cd services/devstack && $(GO) test -race -count=1 -timeout 20m -run '^TestFault' -long .

vet:
	$(GO) vet $(PKGS)

## bench: the load generator (bench/, docs/BENCHMARKS.md): builds the
## services, runs them as separate processes on NATS and a fresh database,
## drives the HTTP API with 64 clients and prints the table. BENCH_FLAGS
## passes more (-target URL, -duration 30s, -profile DIR, -scenarios ...).
bench:
	$(GO) run ./bench $(BENCH_FLAGS)

## bench-short: the same in under a minute; fails on any failed request (CI).
bench-short:
	$(GO) run ./bench -short $(BENCH_FLAGS)

## gobench: the Go benchmarks of every module (store upserts, token signing
## and verification, ...), with allocations.
gobench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

## bench-admin: seeds ADMIN_BENCH_USERS users (default a million) into a
## fresh database and times the admin search (docs/BENCHMARKS.md, "Admin
## search"); fails when search p99 > 50 ms or the newest page > 20 ms.
ADMIN_BENCH_USERS ?= 1000000
bench-admin:
	cd services/identity && $(GO) test -tags adminbench -count=1 -timeout 30m -run '^TestAdminSearchAtScale$$' -v ./internal/store -admin-bench-users $(ADMIN_BENCH_USERS)

## fuzz: each fuzz target for FUZZTIME (their seed corpora already run in
## `make test`); a failure leaves the input in the package's testdata/fuzz.
FUZZTIME  ?= 10s
FUZZ_PKGS := ./services/gateway/internal/httpapi ./services/gateway/internal/redirecturi ./shared/jwtverify ./shared/wechat ./shared/wechat/oapush ./shared/envconfig
fuzz:
	for p in $(FUZZ_PKGS); do \
		for f in $$($(GO) test -list '^Fuzz' $$p | grep '^Fuzz'); do \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$p || exit 1; \
		done; \
	done

## vulncheck: govulncheck over every module, against the Go vulnerability
## database fetched through the module proxy (see .ci/vulncheck); fails when
## our code calls a known-vulnerable function.
vulncheck:
	GO=$(GO) .ci/vulncheck $(PKGS)

## compose-test: the production shape for real (deploy/composetest): a
## Docker engine and the compose plugin installed and started when absent,
## stand-ins for registry images that cannot be pulled, the images built,
## the dev-profile stack driven through logins, webhooks, scaling, a replica stopped,
## NATS and Postgres restarted, down and up. Prints its timings.
compose-test:
	@start=$$(date +%s); \
	deploy/composetest/setup.sh && \
	images=$$(deploy/composetest/standins.sh) && echo "compose-test images: $$images" && \
	echo "compose-test: setup and images $$(( $$(date +%s) - start ))s" && \
	cd deploy && env $$images $(GO) test -tags composetest -count=1 -v -timeout 45m -run '^TestComposeStack$$' ./composetest/ ; \
	rc=$$?; echo "compose-test: total $$(( $$(date +%s) - start ))s"; exit $$rc

## build: the service binaries into ./bin
build:
	mkdir -p bin
	for s in gateway identity session webhooks fakewechat devstack; do $(GO) build -o bin/$$s ./services/$$s || exit 1; done

devstack:
	$(GO) run ./services/devstack

tidy:
	for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done

## tidy-check: fails when a module's go.mod or go.sum is not what `make tidy`
## would write (each module also builds on its own, GOWORK=off, in images).
tidy-check:
	for m in $(MODULES); do (cd $$m && $(GO) mod tidy -diff) || { echo "$$m: run make tidy"; exit 1; }; done
