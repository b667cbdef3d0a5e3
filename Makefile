# wxlogin — see README.md. Every target runs across all workspace modules.
GO      ?= go
MODULES := $(shell $(GO) list -f '{{.Dir}}' -m)
PKGS    := $(addsuffix /...,$(MODULES))
# Build and test with go.work's toolchain line (a patched Go, fetched
# through the module proxy) unless the caller chose one.
export GOTOOLCHAIN ?= auto

.PHONY: test vet build bench devstack tidy faults-long fuzz vulncheck

## test: vet, then every module's unit and integration tests with the race
## detector, against a real PostgreSQL (WXLOGIN_TEST_DATABASE_URL, else
## 127.0.0.1:5432) and an embedded NATS server.
test: vet
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## faults-long: the fault tests (services/devstack/faults_test.go) with
## bigger bursts and longer outages; `make test` runs their short variants.
faults-long:
	cd services/devstack && $(GO) test -race -count=1 -timeout 20m -run '^TestFault' -long .

vet:
	$(GO) vet $(PKGS)

## bench: the Go benchmarks of every module (store upserts, token signing
## and verification, ...), with allocations.
bench:
	$(GO) test -run='^$$' -bench=. -benchmem $(PKGS)

## fuzz: each fuzz target for FUZZTIME (their seed corpora already run in
## `make test`); a failure leaves the input in the package's testdata/fuzz.
FUZZTIME  ?= 10s
FUZZ_PKGS := ./services/gateway/internal/httpapi ./services/gateway/internal/redirecturi ./shared/jwtverify ./shared/wechat
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

## build: the service binaries into ./bin
build:
	mkdir -p bin
	for s in gateway identity session fakewechat devstack; do $(GO) build -o bin/$$s ./services/$$s || exit 1; done

devstack:
	$(GO) run ./services/devstack

tidy:
	for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done
