# imbox — the developer's entry points. See README.md.

CARGO ?= cargo
RUN_DATA ?= $(CURDIR)/run-data
RUN_LISTEN ?= 127.0.0.1:8080

.PHONY: all build run test lint fmt check-fmt clippy unit e2e clean

all: build

build:
	$(CARGO) build --workspace --bins

# Runs imboxd on loopback with a data directory inside the checkout
# (gitignored). Ctrl-C stops it; `rm -rf run-data` forgets everything.
run:
	$(CARGO) build --bin imboxd --bin imbox
	@echo
	@echo "imboxd: data in $(RUN_DATA)"
	@echo "  WebSocket ws://$(RUN_LISTEN)/ws, wss://127.0.0.1:8443/ws and QUIC quic://127.0.0.1:8443 (the log lists them)"
	@echo "  create an account:  echo 'a long password' | ./target/debug/imboxd --data-dir $(RUN_DATA) user add alice --admin"
	@echo "  log in:             echo 'a long password' | ./target/debug/imbox --server ws://$(RUN_LISTEN) --profile /tmp/alice login alice"
	@echo "  pair a member:      ./target/debug/imboxd --data-dir $(RUN_DATA) invite create --uri   (then: imbox --profile DIR pair URI USER)"
	@echo
	./target/debug/imboxd --data-dir $(RUN_DATA) run --listen $(RUN_LISTEN)

# Every test: formatting, lints, unit tests and end-to-end tests.
test: check-fmt clippy build
	$(CARGO) test --workspace --all-targets

check-fmt:
	$(CARGO) fmt --all --check

fmt:
	$(CARGO) fmt --all

clippy:
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean
