#!/usr/bin/env bash
# Holds per second from Python next to the Rust engine, in one run on this machine:
# the criterion benchmark memory_holds/one_thread, then the same shape from Python (a release
# wheel in its own virtual environment), one thread and asyncio.
set -euo pipefail
cd "$(dirname "$0")/../../.."
target=$(realpath -m "${CARGO_TARGET_DIR:-target}")
venv="$target/python-bench-venv"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check 'maturin>=1.16,<2'
"$venv/bin/maturin" build -q --release --locked --manifest-path bindings/python/Cargo.toml \
  --interpreter "$venv/bin/python" -o "$target/wheels-release"
"$venv/bin/pip" install -q --force-reinstall --disable-pip-version-check "$target"/wheels-release/parq-*.whl
echo "== Rust: cargo bench -p parq-benches --bench memory_holds -- one_thread"
cargo bench -q --locked -p parq-benches --bench memory_holds -- one_thread 2>&1 | grep -E 'time:|thrpt:' || true
echo "== Python: bindings/python/benches/holds.py ${1:-200000}"
"$venv/bin/python" bindings/python/benches/holds.py "${1:-200000}"
