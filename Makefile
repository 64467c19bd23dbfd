# vm-run: `make demo` runs the main job, `make test` every test. Both install
# what is missing first (scripts/setup.sh).

GO        ?= go
# A Go unpacked from go.dev's archive may not be on PATH yet; one on PATH
# wins. go.mod names the oldest Go that builds vm-run: an older go command
# (1.21 or later, as Debian's backports and Ubuntu ship) fetches it from the
# Go module proxy, which distributions' own default (local) would refuse.
export PATH := $(PATH):/usr/local/go/bin
export GOTOOLCHAIN ?= auto
BIN       := bin/vm-run
VERSION   := $(shell git describe --always --dirty 2>/dev/null || echo dev)
# Static: libseccomp.a and glibc linked in; pure-Go user and DNS lookups so
# the binary needs no NSS modules at run time.
TAGS      := osusergo,netgo
LDFLAGS   := -s -w -X main.version=$(VERSION) -linkmode external -extldflags "-static"
export CGO_ENABLED := 1

.PHONY: all build setup test test-unprivileged demo bench fuzz clean

all: build

build: $(BIN)

$(BIN): $(shell find . -name '*.go' -not -path './.cache/*') $(wildcard profiles/*.yaml) go.mod go.sum
	@mkdir -p bin
	$(GO) build -tags $(TAGS) -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/vm-run

setup:
	@bash scripts/setup.sh

test: setup build
	@bash scripts/test.sh

demo: setup build
	@bash scripts/demo.sh

bench: setup build
	@bash scripts/bench.sh

fuzz: setup
	@bash scripts/fuzz.sh

clean:
	rm -rf bin .cache/test
