# Release binaries: static-pie executables that run on hosts with nothing installed.
# Tests build with the same flags and target, so CI compiles everything once.

TARGET ?= x86_64-unknown-linux-gnu
export RUSTFLAGS ?= -C target-feature=+crt-static
CARGO_FLAGS = --release --target $(TARGET)
OUT = target/$(TARGET)/release

.PHONY: release test lint bench clean-cache

release:
	cargo build $(CARGO_FLAGS) --bins
	@file $(OUT)/gravity $(OUT)/tele
	@! ldd $(OUT)/gravity 2>/dev/null | grep -q '=>' || (echo "gravity is not static" >&2; exit 1)

# Every test binary, the long Kubernetes ones side by side (scripts/run-tests).
test: release
	scripts/run-tests $(CARGO_FLAGS)

lint:
	cargo fmt --all -- --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --workspace --lib --bins -- -D warnings
