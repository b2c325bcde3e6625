#!/usr/bin/env bash
# Builds the Debian package of Petrel with dpkg-deb: the binary, the systemd unit, the
# fail2ban filter and jail (as examples), a system user made on install, /etc/petrel and
# /var/lib/petrel with the right owners. Nothing starts on install: there is no config until
# `petrel quickstart` (or the operator) writes one.
#
#   dist/debian/build.sh VERSION OUTDIR      (PETREL_BIN=path uses a built binary)
set -euo pipefail
version=${1:?usage: build.sh VERSION OUTDIR}
out=${2:?usage: build.sh VERSION OUTDIR}
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
arch=$(dpkg --print-architecture)

stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
chmod 0755 "$stage"
install -d "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" \
  "$stage/usr/share/doc/petrel/examples/fail2ban/filter.d" "$stage/usr/share/doc/petrel/examples/fail2ban/jail.d"
if [ -n "${PETREL_BIN:-}" ]; then
  install -m 0755 "$PETREL_BIN" "$stage/usr/bin/petrel"
else
  (cd "$root" && CGO_ENABLED=0 go build -trimpath -o "$stage/usr/bin/petrel" ./cmd/petrel)
fi
install -m 0644 "$root/dist/systemd/petrel.service" "$stage/lib/systemd/system/petrel.service"
install -m 0644 "$root/dist/fail2ban/filter.d/petrel.conf" "$stage/usr/share/doc/petrel/examples/fail2ban/filter.d/"
install -m 0644 "$root/dist/fail2ban/jail.d/petrel.conf" "$stage/usr/share/doc/petrel/examples/fail2ban/jail.d/"
install -m 0644 "$here/copyright" "$stage/usr/share/doc/petrel/copyright"

size=$(du -sk "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" "$here/control" > "$stage/DEBIAN/control"
install -m 0755 "$here/postinst" "$here/postrm" "$stage/DEBIAN/"

mkdir -p "$out"
# gzip: xz takes a minute for the 20 MB binary on a small machine.
dpkg-deb --root-owner-group -Zgzip --build "$stage" "$out/petrel_${version}_${arch}.deb" >/dev/null
echo "$out/petrel_${version}_${arch}.deb"
