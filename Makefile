# wxlogin — see README.md. Every target runs across all workspace modules.
GO      ?= go
MODULES := $(shell $(GO) list -f '{{.Dir}}' -m)
PKGS    := $(addsuffix /...,$(MODULES))

.PHONY: test vet build bench devstack tidy faults-long

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

## build: the service binaries into ./bin
build:
	mkdir -p bin
	for s in gateway identity session fakewechat devstack; do $(GO) build -o bin/$$s ./services/$$s || exit 1; done

devstack:
	$(GO) run ./services/devstack

tidy:
	for m in $(MODULES); do (cd $$m && $(GO) mod tidy) || exit 1; done
