# Lookout. `make demo` shows it working; `make test` is what CI runs.
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: demo install test test-services test-deps lint fmt unit snapshots screenshots bench fuzz clean python image

## Formats everything, the service files included.
fmt:
	$(CARGO) fmt --all
	$(CARGO) fmt --manifest-path python/Cargo.toml
	rustfmt --edition 2024 services/src/*.rs

## Real deliveries of the sample events to a local sink the binary starts itself; in a
## terminal it then prints the web console's address and a sign-in link, and serves
## until Ctrl-C.
demo:
	$(CARGO) run --quiet --bin lookout -- demo

## Puts `lookout` on the PATH (in ~/.cargo/bin), as the README's serve steps expect.
install:
	$(CARGO) install --path . --locked --profile dist

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
	# The Python package's crate is outside the workspace (it links against Python).
	$(CARGO) fmt --manifest-path python/Cargo.toml -- --check
	CARGO_TARGET_DIR=$(CURDIR)/target $(CARGO) clippy --manifest-path python/Cargo.toml -- -D warnings

## Builds the Python package `lookout` into .venv/ (see python/README.md).
python:
	bash scripts/python.sh

## The cargo tests, under a throwaway PostgreSQL cluster (scripts/with-postgres.sh):
## the store suite and tests/scale.rs need one, and fail without it.
## Doc tests, then every test under a throwaway PostgreSQL; ends with "N passed, N failed".
unit:
	CARGO=$(CARGO) bash scripts/test.sh

## The quick loop for a service author (well under a minute once built): the services'
## own tests, then the catalogue, snapshots, end-to-end delivery of every service and
## the README's list of services, then the formatting and lints `make test` checks of
## the services' code, so what passes here passes there.
test-services:
	$(CARGO) test -p services
	$(CARGO) test --test catalogue --test snapshots --test deliver --test secrets --test redirect --test readme
	rustfmt --edition 2024 --check services/src/*.rs
	$(CARGO) clippy -p services --all-targets -- -D warnings

## Rewrites the insta snapshots from what the services now send; review with
## `git diff tests/snapshots`.
snapshots:
	INSTA_UPDATE=always $(CARGO) test --test snapshots

## Screenshots of the web console's main pages (docs/console/, shown in README.md),
## taken by the browser test as it drives a real `serve` through headless Chromium.
screenshots: test-deps
	LOOKOUT_SCREENSHOTS=$(CURDIR)/docs/console $(CARGO) test --test console

## The container image localhost/lookout:latest (deploy/image/Containerfile), built with
## Debian's podman on a base image made from Debian's mirror (docs/OPERATING.md).
image:
	bash scripts/image.sh

## Benchmarks in release mode; rewrites docs/BENCHMARKS.md.
bench:
	bash scripts/bench.sh

## Each cargo-fuzz target for FUZZ_SECONDS (not part of `test`; see docs/FUZZING.md).
FUZZ_SECONDS ?= 60
fuzz:
	cd fuzz && for target in payload config message retry_after; do \
		seeds=seeds/$$target; [ $$target = payload ] && seeds=../testkit/fixtures; \
		mkdir -p corpus/$$target && \
		RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run -O $$target corpus/$$target $$seeds -- \
			-max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	$(CARGO) clean
	rm -rf .venv .venv-bench
