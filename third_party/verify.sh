#!/usr/bin/env bash
# verify.sh: checks every patched copy under third_party/: it must be the published module at
# the version go.mod requires (as the Go module proxy serves it) plus its patches
# (third_party/NAME.patches/*.patch, applied in name order), nothing else, and its own tests
# must pass. .ci/run runs it; run it after touching a copy.
#
#   bash third_party/verify.sh
set -euo pipefail
cd "$(dirname "$0")"
here=$PWD

# folder  module
forks=(
	"go-smtp github.com/emersion/go-smtp"
	"go-msgauth github.com/emersion/go-msgauth"
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for f in "${forks[@]}"; do
	read -r dir mod <<<"$f"
	version=$(cd .. && go list -m -f '{{.Version}}' "$mod")
	replace=$(cd .. && go list -m -f '{{with .Replace}}{{.Path}}{{end}}' "$mod")
	if [ "$replace" != "./third_party/$dir" ]; then
		echo "verify: go.mod does not replace $mod with ./third_party/$dir" >&2
		exit 1
	fi
	src=$(cd "$tmp" && GOFLAGS=-mod=mod go mod download -json "$mod@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	mkdir "$tmp/$dir"
	cp -r "$src/." "$tmp/$dir/"
	chmod -R u+w "$tmp/$dir"
	patches=$(cd "$here" && ls "$dir.patches"/*.patch)
	for p in $patches; do
		(cd "$tmp/$dir" && git apply "$here/$p")
	done
	if ! diff -r "$tmp/$dir" "$dir"; then
		echo "verify: third_party/$dir is not $mod@$version +" $patches "(differences above)" >&2
		exit 1
	fi
	echo "verify: third_party/$dir = $mod@$version +" $patches
	(cd "$dir" && go vet ./... && go test -race -count=1 ./...)
done
