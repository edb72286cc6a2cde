#!/usr/bin/env bash
# Builds the test fixtures that cannot be generated offline, once, into a
# cache shared by every test that needs them (CI keeps ~/.cache between runs
# on the same machine; a fresh machine rebuilds in about two minutes).
#
#   scripts/fixtures.sh [bookworm-minbase]     build if missing, print the path
#
# Fixtures (under ${BULWARK_FIXTURES:-${XDG_CACHE_HOME:-$HOME/.cache}/bulwark-ci/fixtures}):
#
#   bookworm-minbase/rootfs   `debootstrap --variant=minbase bookworm` from
#                             Debian's mirror ($DEBIAN_MIRROR, default
#                             http://deb.debian.org/debian)
#   bookworm-minbase/oci      the same tree as a one-layer OCI image layout
#                             (gzip layer, tag "bookworm-minbase", config
#                             with the host's architecture and a history
#                             entry), usable as `oci:DIR:bookworm-minbase`
#   bookworm-minbase/.complete  written last: a fixture without it is rebuilt
#
# The fixture is built in a temporary directory beside it and renamed into
# place, under a lock, so concurrent test runs never see half a fixture.
# Needs root, debootstrap (installed with apt-get when missing), tar, gzip,
# sha256sum.
set -euo pipefail

cache=${BULWARK_FIXTURES:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/bulwark-ci/fixtures}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
names=("$@")
if ((${#names[@]} == 0)); then
	names=(bookworm-minbase)
fi

die() { echo "fixtures.sh: $*" >&2; exit 1; }

ensure_debootstrap() {
	command -v debootstrap >/dev/null && return 0
	[[ $(id -u) -eq 0 ]] || die "debootstrap is missing and installing it needs root"
	local apt=(apt-get -q -o DPkg::Lock::Timeout=600)
	if ! { "${apt[@]}" install -y debootstrap || { "${apt[@]}" update && "${apt[@]}" install -y debootstrap; }; } </dev/null >"$cache/apt.log" 2>&1; then
		tail -n 20 "$cache/apt.log" >&2
		die "apt-get install debootstrap failed (log: $cache/apt.log)"
	fi
}

# oci_layout ROOTFS DIR TAG CREATED_BY: a one-layer OCI image layout of ROOTFS.
oci_layout() {
	local rootfs=$1 dir=$2 tag=$3 created_by=$4
	local blobs=$dir/blobs/sha256 created="2024-01-01T00:00:00Z" arch
	arch=$(dpkg --print-architecture)
	mkdir -p "$blobs"
	# Entry names without "./", sorted, numeric owners: what docker and
	# buildkit write.
	(cd "$rootfs" && find . -mindepth 1 -maxdepth 1 -printf '%P\n' | LC_ALL=C sort |
		tar --numeric-owner --sort=name --mtime="$created" --xattrs -cf - -T -) >"$dir/layer.tar"
	local diff_id layer_digest layer_size
	diff_id=$(sha256sum <"$dir/layer.tar" | cut -d' ' -f1)
	gzip -n -6 <"$dir/layer.tar" >"$dir/layer.tar.gz"
	rm "$dir/layer.tar"
	layer_digest=$(sha256sum <"$dir/layer.tar.gz" | cut -d' ' -f1)
	layer_size=$(stat -c %s "$dir/layer.tar.gz")
	mv "$dir/layer.tar.gz" "$blobs/$layer_digest"

	printf '{"created":"%s","architecture":"%s","os":"linux","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["bash"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"%s"}]}' \
		"$created" "$arch" "$diff_id" "$created" "$created_by" >"$dir/config.json"
	local config_digest config_size
	config_digest=$(sha256sum <"$dir/config.json" | cut -d' ' -f1)
	config_size=$(stat -c %s "$dir/config.json")
	mv "$dir/config.json" "$blobs/$config_digest"

	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%d}]}' \
		"$config_digest" "$config_size" "$layer_digest" "$layer_size" >"$dir/manifest.json"
	local manifest_digest manifest_size
	manifest_digest=$(sha256sum <"$dir/manifest.json" | cut -d' ' -f1)
	manifest_size=$(stat -c %s "$dir/manifest.json")
	mv "$dir/manifest.json" "$blobs/$manifest_digest"

	printf '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
	printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%d,"annotations":{"org.opencontainers.image.ref.name":"%s"}}]}' \
		"$manifest_digest" "$manifest_size" "$tag" >"$dir/index.json"
}

build_bookworm_minbase() {
	local final=$cache/bookworm-minbase tmp
	[[ -e $final/.complete ]] && return 0
	[[ $(id -u) -eq 0 ]] || die "debootstrap needs root"
	ensure_debootstrap
	tmp=$(mktemp -d "$cache/.bookworm-minbase.XXXXXX")
	# debootstrap mounts /proc and /sys inside the target while it works;
	# make sure nothing stays mounted if it fails half way.
	trap 'umount -R "$tmp/rootfs/proc" "$tmp/rootfs/sys" 2>/dev/null || true; rm -rf "$tmp"' RETURN
	echo "fixtures.sh: debootstrap --variant=minbase bookworm from $mirror (about two minutes)" >&2
	if ! debootstrap --variant=minbase bookworm "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
		tail -n 30 "$tmp/debootstrap.log" >&2
		cp "$tmp/debootstrap.log" "$cache/debootstrap.log" || true
		die "debootstrap failed (log: $cache/debootstrap.log)"
	fi
	mkdir "$tmp/oci"
	oci_layout "$tmp/rootfs" "$tmp/oci" bookworm-minbase "debootstrap --variant=minbase bookworm"
	debootstrap --version >"$tmp/.complete" 2>/dev/null || echo debootstrap >"$tmp/.complete"
	rm -f "$tmp/debootstrap.log"
	rm -rf "$final"
	mv "$tmp" "$final"
	trap - RETURN
}

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
for name in "${names[@]}"; do
	case $name in
	bookworm-minbase) build_bookworm_minbase ;;
	*) die "unknown fixture $name (known: bookworm-minbase)" ;;
	esac
	echo "$cache/$name"
done
