#!/usr/bin/env python3
"""Checks the generated Swift package without a Swift compiler (none exists on this machine).

1. Parses every .swift file under the given directories with tree-sitter-swift and fails on
   any ERROR or MISSING node, printing file:line:column and the offending text.
2. Checks that every C symbol the Swift sources call (`uniffi_parq_ffi_*`, `ffi_parq_ffi_*`)
   is declared in the generated header, and that the modulemap names that header.

This is a syntax check and a cross-reference, not a compilation: types, overloads and the
generated code's semantics are not checked. Usage: check_swift.py HEADER MODULEMAP DIR...

tree-sitter-swift 0.7 does not parse two constructs that are valid Swift and that uniffi's
generated code uses; before parsing, they are rewritten into equivalent forms, line for line,
and counted in the output:
* an attribute alone inside `#if swift(>=5.8)` … `#endif` (`@_documentation(visibility: private)`):
  the two directive lines become blank (the attribute stays, as a Swift >= 5.8 compiler sees it);
* the empty-tuple expression in a closure, `{ () }`: written `{ Void() }`, the same value.
Anything else the grammar flags fails the check.
"""

import pathlib
import re
import sys

import tree_sitter
import tree_sitter_swift


CONDITIONAL_ATTRIBUTE = re.compile(rb"^([ \t]*)#if swift\(>=5\.8\)\n([ \t]*@_documentation\([^)\n]*\)\n)[ \t]*#endif\n", re.M)
EMPTY_TUPLE_CLOSURE = re.compile(rb"\{ \(\) \}")


def normalise(source: bytes):
    """Rewrites the grammar's known gaps (see the module's docs); returns the text and counts."""
    source, attributes = CONDITIONAL_ATTRIBUTE.subn(rb"\n\2\n", source)
    source, tuples = EMPTY_TUPLE_CLOSURE.subn(rb"{ Void() }", source)
    return source, attributes, tuples


def problems(tree, source: bytes):
    """Yields (line, column, kind, text) for every ERROR or MISSING node."""
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error or node.is_missing:
            kind = "MISSING " + node.type if node.is_missing else "ERROR"
            text = source[node.start_byte : min(node.end_byte, node.start_byte + 80)].decode("utf-8", "replace")
            yield node.start_point[0] + 1, node.start_point[1] + 1, kind, text
            if node.is_error:
                continue
        if node.has_error or node.is_missing:
            stack.extend(reversed(node.children))


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    header, modulemap, dirs = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), sys.argv[3:]
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_swift.language()))
    files = sorted(p for d in dirs for p in pathlib.Path(d).rglob("*.swift"))
    if not files:
        print("check_swift: no .swift files found", file=sys.stderr)
        return 1
    failed = 0
    called = set()
    for path in files:
        original = path.read_bytes()
        source, attributes, tuples = normalise(original)
        assert source.count(b"\n") == original.count(b"\n"), "rewrites keep line numbers"
        tree = parser.parse(source)
        found = list(problems(tree, source))
        for line, col, kind, text in found:
            print(f"{path}:{line}:{col}: {kind}: {text!r}")
        failed += bool(found)
        lines = source.count(b"\n")
        print(
            f"  {'FAILED' if found else 'parsed'}  {path.name} ({lines} lines, {len(found)} problems; "
            f"rewritten for the grammar: {attributes} conditional attributes, {tuples} empty-tuple closures)"
        )
        called |= set(re.findall(rb"\b((?:uniffi|ffi)_parq_ffi_\w+)", source))

    declared = set(re.findall(rb"\b((?:uniffi|ffi)_parq_ffi_\w+)\s*\(", header.read_bytes()))
    missing = sorted(s.decode() for s in called - declared)
    for name in missing:
        print(f"{header}: the Swift sources call {name}, which the header does not declare")
    print(f"  {len(called)} C functions called from Swift, {len(declared)} declared in {header.name}")
    mm = modulemap.read_text()
    if f'header "{header.name}"' not in mm:
        print(f"{modulemap}: does not name {header.name}")
        failed += 1
    return 1 if failed or missing else 0


if __name__ == "__main__":
    sys.exit(main())
