#!/usr/bin/env bash
# Installs the packed @keyfob/core, @keyfob/axios and @keyfob/nestjs with plain npm, as a user would, next to
# each NestJS major of @keyfob/nestjs' peer range (10, 11, 12), and runs scripts/consumer-smoke.mjs against
# them: ESM and CommonJS entry points, KeyfobModule.forRoot, the HttpService's token, the 401 renewal and
# the origin check. The workspace's own tests run on NestJS 12 only.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/.node-matrix/consumer"
rm -rf "$root"
mkdir -p "$root/packs"

pnpm exec turbo run build --filter=@keyfob/core --filter=@keyfob/axios --filter=@keyfob/nestjs --output-logs=errors-only
for pkg in core axios nestjs; do
  (cd "packages/$pkg" && pnpm pack --pack-destination "$root/packs" >/dev/null)
done
packs=("$root"/packs/*.tgz)

# NestJS major -> the @nestjs/axios major that supports it.
declare -A nest_axios=([10]=3 [11]=4 [12]=12)
for major in 10 11 12; do
  dir="$root/nest$major"
  mkdir -p "$dir"
  echo '{ "name": "keyfob-consumer", "private": true, "type": "module" }' >"$dir/package.json"
  (cd "$dir" && npm i --no-audit --no-fund --silent "${packs[@]}" \
    "@nestjs/common@$major" "@nestjs/core@$major" "@nestjs/axios@${nest_axios[$major]}" \
    reflect-metadata rxjs axios@1)
  cp scripts/consumer-smoke.mjs "$dir/"
  (cd "$dir" && node consumer-smoke.mjs)
done
