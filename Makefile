# Lookout. `make demo` shows it working; `make test` is what CI runs.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: demo test test-deps lint unit snapshots bench fuzz clean

## Real deliveries of the sample events to a local sink the binary starts itself.
demo:
	$(CARGO) run --quiet --bin lookout -- demo

## Everything CI checks: formatting, lints, and the whole test suite.
test: test-deps lint unit

## Installs what the tests need that Cargo does not (Python tools in .venv/).
test-deps:
	bash scripts/test-deps.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

unit:
	$(CARGO) test --workspace --all-targets
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
	rm -rf .venv .venv-bench
