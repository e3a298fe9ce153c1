#!/usr/bin/env bash
# Runs as root inside an Ubuntu (or, for the arm64 stand-in, Debian) container while an
# equivalent of a Heroku stack image is built: installs the packages of one of Heroku's package
# lists, records which of them no reachable archive has, and fails when too many are missing
# for the image to stand in for Heroku's.
#
# Usage: install-packages.sh SUITE PACKAGE_LIST RECORD_DIR MAX_MISSING_PERCENT [ubuntu|debian]
set -euo pipefail

suite="$1"
package_list="$2"
record_dir="$3"
max_missing_percent="$4"
distribution="${5:-ubuntu}"

export DEBIAN_FRONTEND=noninteractive

# Heroku's images track the -updates and -security pockets of every component.
case "$distribution" in
	ubuntu)
		archive="http://archive.ubuntu.com/ubuntu"
		cat >/etc/apt/sources.list <<EOF
deb ${archive} ${suite} main restricted universe multiverse
deb ${archive} ${suite}-updates main restricted universe multiverse
deb ${archive} ${suite}-security main restricted universe multiverse
EOF
		;;
	debian)
		cat >/etc/apt/sources.list <<EOF
deb http://deb.debian.org/debian ${suite} main contrib non-free non-free-firmware
deb http://deb.debian.org/debian ${suite}-updates main contrib non-free non-free-firmware
deb http://deb.debian.org/debian-security ${suite}-security main contrib non-free non-free-firmware
EOF
		;;
	*)
		echo "ERROR: unknown distribution '${distribution}' (ubuntu or debian)" >&2
		exit 2
		;;
esac
rm -f /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources

# Retry: the archive occasionally answers a burst of requests with a transient error.
apt_get() {
	local attempt
	for attempt in 1 2 3; do
		if apt-get -o Acquire::Retries=3 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "$@"; then
			return 0
		fi
		echo "apt-get $1 failed (attempt ${attempt}/3)" >&2
		sleep $((attempt * 5))
	done
	return 1
}

# apt-get update exits 0 when an index could not be fetched; an image built from stale or
# missing indexes would silently lack packages, so a fetch error fails the update.
apt_update() {
	local attempt log
	log="$(mktemp)"
	for attempt in 1 2 3; do
		if apt-get -q update 2>&1 | tee "$log" && ! grep -qE '^(Err:|W: Failed to fetch|E: )' "$log"; then
			rm -f "$log"
			return 0
		fi
		echo "apt-get update failed (attempt ${attempt}/3)" >&2
		sleep $((attempt * 5))
	done
	return 1
}

apt_update
apt_get -q -y dist-upgrade

wanted="$(mktemp)"
available="$(mktemp)"
# A line is a package name, or a name followed by "(package status: config-files)" for a
# package that Heroku's image removed but whose configuration files remain: not installed there.
awk '!/^#/ && NF && !/config-files/ { print $1 }' "$package_list" | sort -u >"$wanted"
apt-cache dumpavail | sed -n 's/^Package: //p' | sort -u >"$available"

mkdir -p "$record_dir"
comm -23 "$wanted" "$available" >"${record_dir}/missing-packages"
comm -12 "$wanted" "$available" >"${record_dir}/installable-packages"

total="$(wc -l <"$wanted")"
missing="$(wc -l <"${record_dir}/missing-packages")"
echo "${missing} of ${total} listed packages are in no reachable archive: $(tr '\n' ' ' <"${record_dir}/missing-packages")"
if ((missing * 100 > total * max_missing_percent)); then
	echo "ERROR: ${missing} of ${total} packages are missing, more than ${max_missing_percent}%: this image would not stand in for Heroku's." >&2
	exit 1
fi

# shellcheck disable=SC2046 # one package name per line, no spaces by construction
apt_get -q -y --no-install-recommends install $(cat "${record_dir}/installable-packages")

# Anything apt could not install despite being available also counts as missing.
dpkg-query -W -f '${Package}\n' | sort -u >"${record_dir}/installed-packages"
comm -23 "$wanted" "${record_dir}/installed-packages" >"${record_dir}/missing-packages"
missing="$(wc -l <"${record_dir}/missing-packages")"
printf '%s\n' "${total}" >"${record_dir}/listed-count"
if ((missing * 100 > total * max_missing_percent)); then
	echo "ERROR: ${missing} of ${total} packages ended up missing, more than ${max_missing_percent}%." >&2
	exit 1
fi

apt-get clean
rm -rf /var/lib/apt/lists/* /tmp/* /var/tmp/*
rm -f "$wanted" "$available"
