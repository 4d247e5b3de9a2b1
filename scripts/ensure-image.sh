#!/usr/bin/env bash
# Import the test image persys/busybox:local from Debian's busybox-static when it is missing.
set -euo pipefail
image=persys/busybox:local
if docker image inspect "$image" >/dev/null 2>&1; then exit 0; fi
busybox=$(command -v busybox || echo /bin/busybox)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/tmp" "$root/www" "$root/etc"
cp "$busybox" "$root/bin/busybox"
for applet in $("$root/bin/busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
echo "root:x:0:0:root:/root:/bin/sh" > "$root/etc/passwd"
echo "hello from persys" > "$root/www/index.html"
tar -C "$root" -c . | docker import -c 'ENV PATH=/bin' - "$image" >/dev/null
echo "imported $image"
