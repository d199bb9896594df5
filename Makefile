# Ensemble build and test entry points. `make test` is the one test command
# (README and .ci/run call it); it installs what the tests need on a fresh
# Debian machine when run as root.

GO ?= go
PKGS := ./...

# Packages whose tests drive disgo or disgolink run a second time without
# -race: their race reports come from inside those libraries only (each
# such test file carries `//go:build !race` and names the upstream
# file:line of every race it triggers). Filled in as such tests land.
NORACE_PKGS :=

.PHONY: test deps vet test-race test-norace lint run build fuzz

test: deps vet test-race test-norace

deps:
	./scripts/install-deps.sh

vet:
	$(GO) vet $(PKGS)

test-race:
	$(GO) test -race -count=1 $(PKGS)

test-norace:
ifneq ($(strip $(NORACE_PKGS)),)
	$(GO) test -count=1 $(NORACE_PKGS)
endif

lint: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

build:
	$(GO) build -o bin/node ./cmd/node

run:
	$(GO) run ./cmd/node --config cluster.yaml

# A short local fuzz pass over every fuzz target (the seed corpora also run
# in `make test`). FUZZTIME bounds each target.
FUZZTIME ?= 20s
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done
