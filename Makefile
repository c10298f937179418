# xlb — the two commands a person types are `sudo make test` and `sudo make demo`;
# both install what a fresh Debian/Ubuntu machine lacks and build first.

GO          ?= go
CLANG       ?= clang-19
BIN         := bin/xlb
VERSION     ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS     := -X main.version=$(VERSION)
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# Namespace tests share two cores with the compiler: keep package parallelism low.
TEST_FLAGS  ?= -race -p 1 -timeout 40m
export CGO_ENABLED ?= 1

.PHONY: all deps generate generate-check build test test-unit bench demo lint install package clean

all: build

deps:
	@bash scripts/deps.sh

generate:
	@bash scripts/generate.sh

# CI: regenerate with the pinned clang and fail if the committed objects differ.
generate-check: generate
	@git diff --exit-code -- bpf l4 || { echo "generated BPF objects differ from the committed ones: run 'make generate' and commit" >&2; exit 1; }

build:
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/xlb

test: deps build
	@bash scripts/bpffs.sh
	$(GO) test $(TEST_FLAGS) ./...

# Unprivileged subset: packages whose tests need no root or kernel features.
test-unit:
	$(GO) test -race ./maglev/... ./cmd/...

bench: deps build
	@bash test/bench/run.sh

# The flash sale (docs/demo.md); KEEP=1 leaves the site up until Ctrl-C.
demo: deps build
	@bash scripts/bpffs.sh
	$(GO) build -o bin/xlb-demo-app ./test/demo/app
	$(GO) build -o bin/xlb-demo-etcd ./test/fleet/etcd
	$(GO) build -o bin/xlb-demo ./test/demo
	bin/xlb-demo --xlb $(BIN) --app bin/xlb-demo-app --etcd bin/xlb-demo-etcd $(if $(KEEP),--keep)

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '_bpfe[lb]\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	@$(GO) mod tidy -diff >/dev/null || { echo "go.mod/go.sum are not tidy: run 'go mod tidy' and commit" >&2; exit 1; }
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Installs the binary, systemd units, example configs, dashboards and shell
# completion under $(DESTDIR)$(PREFIX) (units and sysusers under
# $(DESTDIR)$(UNITDIR)/..; example configs under $(DESTDIR)/etc/xlb as
# *.example, never over a config in use). Installing on this host (no
# DESTDIR) also creates the xlb user and group; CREATE_USERS=1 does that
# under DESTDIR too. scripts/package.sh builds the Debian package from the
# same layout.
PREFIX  ?= /usr/local
UNITDIR ?= /lib/systemd/system
install: build
	@DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" UNITDIR="$(UNITDIR)" BIN="$(BIN)" bash scripts/install.sh

package: build
	@BIN="$(BIN)" VERSION="$(VERSION)" bash scripts/package.sh

clean:
	rm -rf bin
	$(GO) clean -testcache
