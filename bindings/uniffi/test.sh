#!/usr/bin/env bash
# Tests the Kotlin and Swift bindings (bindings/uniffi) end to end:
#   1. builds parq-ffi (cdylib + staticlib) and the matching uniffi-bindgen, once;
#   2. runs parq-ffi's Rust tests (the gate vectors are current; skip with PARQ_FFI_SKIP_RUST_TESTS=1);
#   3. generates the Kotlin and Swift sources from the built library into the target dir;
#   4. Swift: parses every .swift file with tree-sitter-swift, compiles the C header and links
#      every function it declares against libparq_ffi.so (no Swift compiler exists here);
#   5. Kotlin: compiles the generated bindings and the tests with kotlinc and runs them on the
#      JVM (JNA) against a real `parq serve` ($PARQ_BIN, default $TARGET/debug/parq).
# Missing tools are installed: the npm package kotlin-compiler and a Python venv with
# tree-sitter into $TARGET/uniffi-tools, Debian's libjna-java when run as root.
# The last line is the Kotlin runner's `kotlin: N passed, M failed`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"

TARGET="${CARGO_TARGET_DIR:-target}"
case "$TARGET" in /*) ;; *) TARGET="$ROOT/$TARGET" ;; esac
export CARGO_TARGET_DIR="$TARGET"
export CARGO_INCREMENTAL=0
TOOLS="$TARGET/uniffi-tools"
GEN="$TARGET/uniffi"
KOTLIN_VERSION="${KOTLIN_VERSION:-2.4.20}"
PARQ_BIN="${PARQ_BIN:-$TARGET/debug/parq}"
JNA_JAR="${JNA_JAR:-/usr/share/java/jna.jar}"
HERE="bindings/uniffi"

PHASE=""; PHASE_START=$SECONDS; TIMES=""
phase_done() {
  if [ -n "$PHASE" ]; then
    local d=$((SECONDS - PHASE_START))
    printf '    (%s: %ds)\n' "$PHASE" "$d"
    TIMES+=$(printf '%6ds  %s' "$d" "$PHASE")$'\n'
  fi
}
phase() { phase_done; PHASE="$*"; PHASE_START=$SECONDS; printf '\n==> uniffi: %s\n' "$*"; }
die() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }
as_root() { [ "$(id -u)" = 0 ]; }
APT_UPDATED=""
apt_install() {
  as_root || die "$* is missing and this script is not root: install $* (Debian packages) and run again"
  if [ -z "$APT_UPDATED" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# ---- Tools ----------------------------------------------------------------------------------
phase "tools"
command -v java >/dev/null || apt_install openjdk-17-jre-headless
[ -f "$JNA_JAR" ] || apt_install libjna-java
[ -f "$JNA_JAR" ] || die "JNA is not at $JNA_JAR (set JNA_JAR)"
KOTLIN_HOME="$TOOLS/kotlin/node_modules/kotlin-compiler"
if [ ! -f "$KOTLIN_HOME/bin/kotlinc" ] || ! grep -q "\"version\": \"$KOTLIN_VERSION\"" "$KOTLIN_HOME/package.json"; then
  command -v npm >/dev/null || apt_install npm
  echo "installing kotlin-compiler $KOTLIN_VERSION from npm into $TOOLS/kotlin"
  mkdir -p "$TOOLS/kotlin"
  npm install --silent --no-audit --no-fund --prefix "$TOOLS/kotlin" "kotlin-compiler@$KOTLIN_VERSION" >/dev/null
fi
COROUTINES_JAR="$KOTLIN_HOME/lib/kotlinx-coroutines-core-jvm.jar"
STDLIB_JAR="$KOTLIN_HOME/lib/kotlin-stdlib.jar"
[ -f "$COROUTINES_JAR" ] || die "kotlin-compiler $KOTLIN_VERSION ships no kotlinx-coroutines jar in $KOTLIN_HOME/lib"
VENV="$TOOLS/venv"
if ! "$VENV/bin/python" -c 'import tree_sitter, tree_sitter_swift' 2>/dev/null; then
  echo "installing tree-sitter and tree-sitter-swift from PyPI into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "tree-sitter==0.26.*" "tree-sitter-swift==0.7.*"
fi
echo "java: $(java -version 2>&1 | head -n 1); kotlinc $KOTLIN_VERSION; JNA $JNA_JAR"

# ---- Build ----------------------------------------------------------------------------------
phase "build parq-ffi and uniffi-bindgen"
# Two invocations: built together, uniffi's features would unify (the bindgen's `cli` into the
# library's uniffi), and parq-ffi would be rebuilt whenever `cargo build -p parq-ffi` or
# `cargo test -p parq-ffi` runs alone.
cargo build -p parq-ffi
cargo build -p uniffi-bindgen
LIB="$TARGET/debug/libparq_ffi.so"
[ -f "$LIB" ] || die "cargo built no $LIB"
if [ ! -x "$PARQ_BIN" ]; then
  phase "build the parq server (PARQ_BIN $PARQ_BIN is missing)"
  cargo build -p parq-server --bin parq
  PARQ_BIN="$TARGET/debug/parq"
fi

if [ "${PARQ_FFI_SKIP_RUST_TESTS:-}" != 1 ]; then
  phase "rust: cargo test -p parq-ffi (the gate vectors are current)"
  cargo test -p parq-ffi
fi

# ---- Generate -------------------------------------------------------------------------------
phase "generate Kotlin and Swift from the built library"
rm -rf "$GEN"
mkdir -p "$GEN/kotlin" "$GEN/swift-raw"
"$TARGET/debug/uniffi-bindgen" generate --library "$LIB" --language kotlin --out-dir "$GEN/kotlin" --no-format
"$TARGET/debug/uniffi-bindgen-swift" "$LIB" "$GEN/swift-raw" --swift-sources --headers --modulemap \
  --module-name ParqFFI --modulemap-filename module.modulemap
# The SwiftPM package an iOS app takes (see README.md): the Swift sources, and the header and
# modulemap that go into ParqFFI.xcframework next to the static libraries.
PKG="$GEN/swift/Parq"
mkdir -p "$PKG/Sources/Parq" "$PKG/ParqFFI/include"
cp "$HERE/swift/Package.swift" "$PKG/Package.swift"
cp "$GEN/swift-raw/Parq.swift" "$PKG/Sources/Parq/"
cp "$GEN/swift-raw/ParqFFI.h" "$GEN/swift-raw/module.modulemap" "$PKG/ParqFFI/include/"
find "$GEN/kotlin" "$PKG" -type f | sed "s|$ROOT/||" | sort

# ---- Swift: parsed, and its C layer compiled and linked --------------------------------------
phase "swift: parse with tree-sitter-swift; compile the C header and link its functions"
"$VENV/bin/python" "$HERE/swift/check_swift.py" "$PKG/ParqFFI/include/ParqFFI.h" \
  "$PKG/ParqFFI/include/module.modulemap" "$PKG"
{
  echo '#include "ParqFFI.h"'
  echo '/* Every function the header declares, so that linking proves the library exports it. */'
  echo 'void *const parq_ffi_symbols[] = {'
  grep -oE '\b(uniffi|ffi)_parq_ffi_[A-Za-z0-9_]+ *\(' "$PKG/ParqFFI/include/ParqFFI.h" \
    | sed -E 's/ *\($//' | sort -u | sed 's/.*/    (void *)\&&,/'
  echo '};'
  echo 'int main(void) { return parq_ffi_symbols[0] == 0; }'
} > "$GEN/symbols.c"
cc -std=c11 -Wall -Werror -D_Nullable= -D_Nonnull= -I "$PKG/ParqFFI/include" "$GEN/symbols.c" \
  -L "$TARGET/debug" -lparq_ffi -Wl,-rpath,"$TARGET/debug" -o "$GEN/symbols"
"$GEN/symbols"
echo "  the header compiles; $(grep -c '(void \*)&' "$GEN/symbols.c") functions it declares link against libparq_ffi.so"

# ---- Kotlin: compiled and run ----------------------------------------------------------------
phase "kotlin: compile the bindings and the tests (kotlinc $KOTLIN_VERSION)"
KT_BINDINGS="$GEN/kotlin/dev/parq/ffi/parq_ffi.kt"
[ -f "$KT_BINDINGS" ] || die "uniffi-bindgen wrote no $KT_BINDINGS"
CP="$JNA_JAR:$COROUTINES_JAR"
# The generated bindings (~10 k lines) are compiled once per content and kept in the tools dir;
# only the tests are compiled on every run.
BINDINGS_SUM=$( { echo "$KOTLIN_VERSION"; cat "$KT_BINDINGS"; } | sha256sum | cut -c1-16)
BINDINGS_JAR="$TOOLS/kotlin-cache/parq-ffi-bindings-$BINDINGS_SUM.jar"
if [ ! -f "$BINDINGS_JAR" ]; then
  mkdir -p "$TOOLS/kotlin-cache"
  rm -f "$TOOLS"/kotlin-cache/parq-ffi-bindings-*.jar
  bash "$KOTLIN_HOME/bin/kotlinc" -nowarn -cp "$CP" "$KT_BINDINGS" -d "$BINDINGS_JAR.tmp.jar"
  mv "$BINDINGS_JAR.tmp.jar" "$BINDINGS_JAR"
else
  echo "the generated bindings are unchanged: $BINDINGS_JAR"
fi
CP="$BINDINGS_JAR:$CP"
bash "$KOTLIN_HOME/bin/kotlinc" -nowarn -cp "$CP" "$HERE/kotlin/ParqFfiTest.kt" -d "$GEN/kotlin-tests.jar"

phase "kotlin: run the tests (JVM + JNA, against parq serve)"
set +e
PARQ_BIN="$PARQ_BIN" PARQ_GATE_VECTORS="$HERE/tests/fixtures/gate_vectors.json" \
  java -Djna.library.path="$TARGET/debug" -cp "$GEN/kotlin-tests.jar:$CP:$STDLIB_JAR" \
  dev.parq.ffi.test.ParqFfiTestKt 2>&1 | tee "$GEN/kotlin-tests.log"
KOTLIN_STATUS=${PIPESTATUS[0]}
set -e
phase_done
SUMMARY=$(grep -E '^kotlin: [0-9]+ passed, [0-9]+ failed$' "$GEN/kotlin-tests.log" | tail -n 1 || true)
printf '\nuniffi phases:\n%s' "$TIMES"
printf '%6ds  total\n' "$SECONDS"
echo "Swift: parsed (tree-sitter-swift), C header compiled and linked; Kotlin: compiled and run."
[ -n "$SUMMARY" ] || { echo "kotlin: 0 passed, 1 failed"; die "the Kotlin runner printed no summary (exit $KOTLIN_STATUS)"; }
echo "$SUMMARY"
exit "$KOTLIN_STATUS"
