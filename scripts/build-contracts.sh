#!/usr/bin/env bash
# Rebuilds crates/parevm-workloads/contracts/build/ from the .sol sources with
# the solc-js version pinned in scripts/package.json (installed into the
# gitignored scripts/node_modules/).
#
#   scripts/build-contracts.sh           compile and overwrite contracts/build/
#   scripts/build-contracts.sh --check   compile into a temp dir and diff against
#                                        the committed contracts/build/; exit 1 on
#                                        mismatch, exit 0 (skipping) if node/npm
#                                        or the solc-js package is unavailable.
set -euo pipefail

SCRIPTS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
BUILD="$SCRIPTS/../crates/parevm-workloads/contracts/build"

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

skip() {
  echo "solc-js not available, skipping${1:+ ($1)}"
  exit 0
}

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$check" = 1 ]; then skip "node/npm not found"; fi
  echo "build-contracts: node and npm are required" >&2
  exit 1
fi

pinned="$(node -p "require('$SCRIPTS/package.json').dependencies.solc")"
installed="$(node -p "try { require('$SCRIPTS/node_modules/solc/package.json').version } catch (e) { '' }")"
if [ "$installed" != "$pinned" ]; then
  echo "installing solc-js $pinned into scripts/node_modules" >&2
  if ! npm ci --prefix "$SCRIPTS" --no-audit --no-fund --loglevel=error >&2; then
    if [ "$check" = 1 ]; then skip "npm ci failed"; fi
    echo "build-contracts: npm ci failed" >&2
    exit 1
  fi
fi

if [ "$check" = 0 ]; then
  exec node "$SCRIPTS/build-contracts.js" --out "$BUILD"
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
node "$SCRIPTS/build-contracts.js" --out "$tmp" >/dev/null
if diff -r "$BUILD" "$tmp"; then
  echo "contracts/build is up to date"
else
  echo "build-contracts: committed contracts/build differs from a fresh compile; run scripts/build-contracts.sh" >&2
  exit 1
fi
