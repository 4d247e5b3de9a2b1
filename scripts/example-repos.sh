#!/usr/bin/env bash
# Make the local git repository that manifests/compose.yaml points at, from examples/compose-app.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
repo=/tmp/persys-examples/hello-compose
rm -rf "$repo"
mkdir -p "$repo"
cp -r "$top/examples/compose-app/." "$repo/"
git -C "$repo" init -q -b main
git -C "$repo" -c user.name=persys -c user.email=persys@localhost add -A
git -C "$repo" -c user.name=persys -c user.email=persys@localhost commit -qm "hello-compose"
