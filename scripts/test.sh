#!/usr/bin/env bash
# Runs the test suite: installs libtorch if needed, fetches the default model (tests that need it
# or the GLUE data skip with a printed reason when they are absent), then `cargo test --release`.
set -euo pipefail
cd "$(dirname "$0")/.."
LIBTORCH="$(bash scripts/setup-libtorch.sh)"
export LIBTORCH
cargo build --release
target/release/finetune fetch || echo "WARNING: could not fetch the default model; model tests will skip" >&2
target/release/finetune fetch --model efficientnet-lite0 || echo "WARNING: could not fetch EfficientNet-Lite0; its tests will skip" >&2
# --nocapture so the reasons of skipped tests show in the log; --no-fail-fast so one failing test
# binary does not hide the results of the others.
cargo test --release --no-fail-fast "$@" -- --nocapture
# The CPU-dependent golden tests again on the AVX2 kernels (the AMD kind of machine, reproduced to
# the digit on any x86-64 CPU with more): docs/development.md, "Tests that depend on the CPU".
if [ "$#" -eq 0 ]; then
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 MKL_ENABLE_INSTRUCTIONS=AVX2 FBGEMM_ENABLE_INSTRUCTIONS=AVX2 \
        cargo test --release --no-fail-fast --test model_golden --test families --test vision_golden --test unpad --test quantize -- --nocapture
fi
