# Ensemble build and test entry points. `make test` is the one test command
# (README and .ci/run call it); it installs what the tests need on a fresh
# Debian machine when run as root.

GO ?= go
PKGS := ./...

# Packages whose tests drive disgo or disgolink run a second time without
# -race: their race reports come from inside those libraries only (each
# such test file carries `//go:build !race` and names the upstream
# file:line of every race it triggers).
#
# internal/lavalinkemu (disgolink v3.1.0 races, all inside disgolink/):
#   node.go:274 (n.conn = nil unlocked, from client.go:244) vs node.go:330 and node.go:318
#   player.go:133 vs player.go:211 (goroutine started at player.go:143)
#   node.go:115 (via player.go:120) vs node.go:235 (reconnect path node.go:306 -> 294)
#   node.go:111 vs node.go:360
#   node.go:274 vs node.go:274 (our Close against the reader's close)
#   node.go:204 vs node.go:271 (open against Close, both writing the status)
#
# internal/discordemu (disgo v0.19.6 gateway races, disgo_gateway_test.go):
#   gateway/gateway.go:317,319 (CloseWithCode, heartbeatCancel) vs gateway.go:450,451 (heartbeat)
#   gateway/gateway.go:641,650,651 (listen) vs gateway.go:335-337 (CloseWithCode)
#   gateway/gateway_transports.go:146 (pipeBuffer.Reset from Close :195) vs :140 (Write)
#   klauspost/compress v1.20.1 zstd/decoder.go:619 (Close) vs :545,:524,:459 and :299-300
#
# cluster (etcd_member_test.go: members whose topology changes, several in
# one process; protoactor 3c0e61ca19c9 and gRPC v1.60.1, measured before
# gRPC went to v1.83.2 with the OTLP exporter; not measured again):
#   cluster/identitylookup/disthash/manager.go:75 (Get) vs manager.go:69 (onClusterTopology)
#   remote/server.go:61 -> grpc grpclog/loggerv2.go:75,76 (SetLoggerV2) vs grpc internal/grpclog/grpclog.go:34,37
#
# actors/shard (gateway_test.go), actors/lavalink (*_emu_test.go) and
# internal/node (end-to-end tests): the disgo gateway and disgolink races
# above.
#
# internal/status (remote_test.go: two protoactor remotes in one process,
# protoactor 3c0e61ca19c9, gRPC v1.83.2):
#   remote/server.go:61 -> grpc grpclog/loggerv2.go:39,40 (SetLoggerV2) vs grpc grpclog/grpclog.go:138,141 (from grpc server.go:930)
NORACE_PKGS := ./cluster ./internal/lavalinkemu/... ./internal/discordemu/... ./actors/shard/... ./actors/lavalink/... ./internal/node/... ./internal/status

.PHONY: test deps vet alerts vulncheck test-race test-norace coverage deployment-check lint run build fuzz generate

test: deps lint alerts test-race test-norace coverage deployment-check

deps:
	./scripts/install-deps.sh

vet:
	$(GO) vet $(PKGS)

# The Prometheus alert rules and their unit tests (promtool comes with
# Debian's prometheus package; make deps installs it).
alerts:
	promtool check rules deploy/prometheus/alerts.yml
	promtool test rules deploy/prometheus/alerts_test.yml

# Coverage comes from the two test runs themselves: each writes raw
# coverage data (-test.gocoverdir) into its own directory under COVERDIR,
# made afresh by its target, and `make coverage` merges both per package
# (go tool covdata), so the !race test files count too. Both runs use
# -covermode=atomic, the mode -race requires, so that their data merge.
# coverage fails when a COVER_FLOOR_PKGS package is below COVER_MIN %
# (scripts/coverage.sh).
COVERDIR := $(CURDIR)/.cover
COVERFLAGS := -cover -covermode=atomic
COVER_MIN := 80
COVER_FLOOR_PKGS := ./internal/music ./internal/store ./internal/ratelimit ./actors/...

test-race:
	rm -rf $(COVERDIR)/race && mkdir -p $(COVERDIR)/race
	$(GO) test -race -count=1 $(COVERFLAGS) $(PKGS) -args -test.gocoverdir=$(COVERDIR)/race

test-norace:
	rm -rf $(COVERDIR)/norace && mkdir -p $(COVERDIR)/norace
ifneq ($(strip $(NORACE_PKGS)),)
	$(GO) test -count=1 $(COVERFLAGS) $(NORACE_PKGS) -args -test.gocoverdir=$(COVERDIR)/norace
endif

coverage:
	GO=$(GO) scripts/coverage.sh $(COVER_MIN) "$(PKGS)" "$(COVER_FLOOR_PKGS)" $(COVERDIR)/race $(COVERDIR)/norace

# DEPLOYMENT.md's three-node loopback walk-through, run exactly as written
# (its marked shell blocks), in a network namespace of its own.
deployment-check:
	scripts/deployment-check.sh

# Static gates: formatting, go vet, staticcheck (pinned, built from the Go
# module proxy into bin/) and a go.mod that `go mod tidy` would not change.
STATICCHECK_VERSION := v0.8.2
STATICCHECK := bin/staticcheck-$(STATICCHECK_VERSION)

lint: vet $(STATICCHECK)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(STATICCHECK) $(PKGS)
	$(GO) mod tidy -diff

# Known vulnerabilities in the dependencies and the standard library, from
# the Go vulnerability database (vuln.go.dev). Not part of `make test`: the
# database is not reachable from the machines CI runs on; run it where it is.
GOVULNCHECK_VERSION := v1.9.0

vulncheck:
	GOBIN=$(CURDIR)/bin $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)
	bin/govulncheck ./...

$(STATICCHECK):
	mkdir -p bin
	GOBIN=$(CURDIR)/bin/.staticcheck $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv bin/.staticcheck/staticcheck $@ && rmdir bin/.staticcheck

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

# Regenerates the protobuf messages and typed grains (the generated code is
# committed, so builds and CI need no protoc). rpcs are only ever appended:
# generated grain methods are called by index.
PROTOC_GEN_GO := google.golang.org/protobuf/cmd/protoc-gen-go@v1.36.12
PROTOC_GEN_GRAIN := github.com/asynkron/protoactor-go/protobuf/protoc-gen-go-grain@v0.0.0-20240822202345-3c0e61ca19c9
generate:
	@command -v protoc >/dev/null || { [ "$$(id -u)" -eq 0 ] && apt-get update -qq && apt-get install -y -qq protobuf-compiler >/dev/null; }
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GO)
	GOBIN=$(CURDIR)/bin $(GO) install $(PROTOC_GEN_GRAIN)
	protoc --plugin=protoc-gen-go=bin/protoc-gen-go --plugin=protoc-gen-go-grain=bin/protoc-gen-go-grain \
	  --go_out=. --go_opt=paths=source_relative --go-grain_out=. --go-grain_opt=paths=source_relative \
	  cluster/clusterpb/ensemble.proto
