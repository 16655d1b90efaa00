# Lookout. `make demo` shows it working; `make test` is what CI runs.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: demo test test-deps lint fmt unit snapshots bench fuzz clean

## Formats everything, the service files included.
fmt:
	$(CARGO) fmt --all
	rustfmt --edition 2024 services/src/*.rs

## Real deliveries of the sample events to a local sink the binary starts itself.
demo:
	$(CARGO) run --quiet --bin lookout -- demo

## Everything CI checks: formatting, lints, and the whole test suite.
test: test-deps lint unit

## Installs what the tests need that Cargo does not (PostgreSQL; Python tools in .venv/).
test-deps:
	bash scripts/test-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	# cargo fmt does not follow automod's modules: check the service files directly.
	rustfmt --edition 2024 --check services/src/*.rs
	$(CARGO) clippy --workspace --all-targets -- -D warnings

## The cargo tests, under a throwaway PostgreSQL cluster (scripts/with-postgres.sh):
## the store suite and tests/scale.rs need one, and fail without it.
unit:
	bash scripts/with-postgres.sh $(CARGO) test --workspace --all-targets
	$(CARGO) test --workspace --doc

## Rewrites the insta snapshots from what the services now send; review with `git diff`
## (or `cargo insta review` if you have cargo-insta).
snapshots:
	INSTA_UPDATE=always $(CARGO) test --test snapshots

## Benchmarks in release mode; rewrites docs/BENCHMARKS.md.
bench:
	bash scripts/bench.sh

clean:
	$(CARGO) clean
	rm -rf .venv
