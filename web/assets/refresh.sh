#!/usr/bin/env bash
# Refreshes the browser libraries that the gateway embeds (web/static/vendor)
# from the npm packages pinned by package-lock.json. Run it after changing a
# version in package.json (then `npm install` to update the lock file); the
# result is committed, so `go build` never needs Node.
set -euo pipefail
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --loglevel=error
out=../static/vendor
rm -rf "$out" && mkdir -p "$out"
cp node_modules/graphiql/graphiql.min.js node_modules/graphiql/graphiql.min.css "$out/"
cp node_modules/react/umd/react.production.min.js "$out/"
cp node_modules/react-dom/umd/react-dom.production.min.js "$out/"
cp node_modules/uplot/dist/uPlot.iife.min.js node_modules/uplot/dist/uPlot.min.css "$out/"
{
  echo "Copied by web/assets/refresh.sh from npm; do not edit."
  for p in graphiql react react-dom uplot; do
    node -e "const p=require('./node_modules/$p/package.json'); console.log(p.name+'@'+p.version+' ('+p.license+')')"
  done
} > "$out/VERSIONS"
echo "web/static/vendor refreshed:"; cat "$out/VERSIONS"
