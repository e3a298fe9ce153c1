#!/usr/bin/env bash
# Sets up what the demo and the tests need on a Debian or Ubuntu machine, and takes down what
# it started: the system packages (Docker, debootstrap...), a Docker engine, a Python venv.
# Nothing is installed or started that is already there.

ENVIRONMENT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
ENVIRONMENT_VENV="${ENVIRONMENT_ROOT}/.venv"
ENVIRONMENT_STARTED_DOCKERD_PID=""
ENVIRONMENT_REGISTERED_BINFMT=""
ENVIRONMENT_BACKGROUND_PIDS=()
# The arm64 tests run aarch64 programs under qemu-user. The entry has the F (fix-binary) flag:
# the kernel opens the emulator once, at registration, so it also runs programs inside chroots
# and containers, which do not have it (Debian's own entry, flags PF, needs it inside them).
ENVIRONMENT_BINFMT_NAME="jemalloc-buildpack-aarch64"
ENVIRONMENT_BINFMT_DIR="/proc/sys/fs/binfmt_misc"

# Steps and errors look like the buildpack's own (output::step, output::error).
# shellcheck source=lib/output.sh
source "${ENVIRONMENT_ROOT}/lib/output.sh"

# Docker and debootstrap need root: say so up front rather than fail halfway.
# Usage: environment::require_root
environment::require_root() {
	if [[ "$(id -u)" != 0 ]]; then
		output::error "run this as root (e.g. with sudo): it installs packages and starts a Docker engine"
	fi
}

# The settings a user gives these scripts in the environment, kept when they re-run under sudo.
ENVIRONMENT_PASSED_VARIABLES="STACKS,JEMALLOC_BUILDPACK_MACHINE_CACHE"

# Re-runs SCRIPT with ARGS as root through sudo when this user is not root, so that the commands
# work as written whether the user is root (a fresh container, without sudo) or not. Returns
# when already root; fails in one line when not root and sudo is not there.
# Usage: environment::become_root SCRIPT [ARGS...]
environment::become_root() {
	if [[ "$(id -u)" == 0 ]]; then
		return 0
	fi
	if ! command -v sudo >/dev/null 2>&1; then
		output::error "$(basename "$1") needs root (it installs packages and starts a Docker engine), and sudo is not installed: run it as root"
	fi
	exec sudo --preserve-env="${ENVIRONMENT_PASSED_VARIABLES}" "$(realpath "$1")" "${@:2}"
}

# Usage: environment::install_system_packages
environment::install_system_packages() {
	local wanted=() command package
	# curl, gcc and make: tests/test_faults_host.py runs bin/compile on this machine.
	# qemu-aarch64-static: the arm64 tests (tests/test_arm64.py) emulate an arm64 machine.
	for command in docker:docker.io dockerd:docker.io debootstrap:debootstrap dpkg-deb:dpkg shellcheck:shellcheck shfmt:shfmt \
		curl:curl gcc:gcc make:make qemu-aarch64-static:qemu-user-static; do
		package="${command#*:}"
		command -v "${command%%:*}" >/dev/null || wanted+=("$package")
	done
	if ((${#wanted[@]} == 0)); then
		return 0
	fi
	output::step "Installing ${wanted[*]}"
	command -v apt-get >/dev/null || output::error "no apt-get: install ${wanted[*]} by hand"
	DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${wanted[@]}" >/dev/null
}

# Starts a Docker engine unless one answers already. It runs without the default bridge
# network: the tests use only the host's loopback (compiles) and no network at all (dynos).
# Usage: environment::start_docker
environment::start_docker() {
	if docker info >/dev/null 2>&1; then
		return 0
	fi
	output::step "Starting a Docker engine"
	mkdir -p "${ENVIRONMENT_ROOT}/.cache"
	dockerd --bridge=none --iptables=false --ip-masq=false \
		>"${ENVIRONMENT_ROOT}/.cache/dockerd.log" 2>&1 &
	ENVIRONMENT_STARTED_DOCKERD_PID=$!
	local waited
	for waited in $(seq 1 60); do
		if docker info >/dev/null 2>&1; then
			output::detail "ready after ${waited}s"
			return 0
		fi
		if ! kill -0 "$ENVIRONMENT_STARTED_DOCKERD_PID" 2>/dev/null; then
			tail -n 20 "${ENVIRONMENT_ROOT}/.cache/dockerd.log" >&2
			output::error "dockerd exited (log: .cache/dockerd.log)"
		fi
		sleep 1
	done
	output::error "dockerd did not answer within 60s (log: .cache/dockerd.log)"
}

# Registers qemu-user for aarch64 programs with the kernel, unless an entry with the F flag is
# there already (this one from an earlier run, or the machine's own).
# Usage: environment::enable_arm64_emulation
environment::enable_arm64_emulation() {
	local entry
	if [[ ! -e "${ENVIRONMENT_BINFMT_DIR}/register" ]]; then
		mount -t binfmt_misc binfmt_misc "$ENVIRONMENT_BINFMT_DIR" ||
			output::error "cannot mount binfmt_misc at ${ENVIRONMENT_BINFMT_DIR}: the arm64 tests need it to run aarch64 programs"
	fi
	for entry in "$ENVIRONMENT_BINFMT_DIR"/*; do
		[[ "${entry##*/}" != register && "${entry##*/}" != status ]] || continue
		if grep -qx enabled "$entry" && grep -q '^flags: .*F' "$entry" &&
			grep -q '^magic 7f454c460201010000000000000000000200b700' "$entry"; then
			return 0
		fi
	done
	output::step "Registering qemu-aarch64-static for arm64 programs (binfmt_misc)"
	printf '%s' ":${ENVIRONMENT_BINFMT_NAME}:M::"'\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'":"'\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'":$(command -v qemu-aarch64-static):F" \
		>"${ENVIRONMENT_BINFMT_DIR}/register" ||
		output::error "could not register qemu-aarch64-static with binfmt_misc"
	ENVIRONMENT_REGISTERED_BINFMT="${ENVIRONMENT_BINFMT_DIR}/${ENVIRONMENT_BINFMT_NAME}"
}

# A job that runs beside the caller (the arm64 tier beside the stack tier) and must not outlive
# it, nor the engine and emulation it uses: stop_started_services stops it before them.
# Usage: environment::start_background LOG COMMAND... (sets ENVIRONMENT_BACKGROUND_PID)
environment::start_background() {
	local log="$1"
	shift
	"$@" >"$log" 2>&1 &
	ENVIRONMENT_BACKGROUND_PID=$!
	ENVIRONMENT_BACKGROUND_PIDS+=("$ENVIRONMENT_BACKGROUND_PID")
}

# Waits for a job of start_background, which then has nothing left to stop, and returns its status.
# Usage: environment::wait_background PID
environment::wait_background() {
	local pid="$1" status=0 kept=() other
	wait "$pid" || status=$?
	for other in "${ENVIRONMENT_BACKGROUND_PIDS[@]}"; do
		[[ "$other" == "$pid" ]] || kept+=("$other")
	done
	ENVIRONMENT_BACKGROUND_PIDS=("${kept[@]}")
	return "$status"
}

# Usage: environment::stop_started_services
environment::stop_started_services() {
	local pid
	for pid in "${ENVIRONMENT_BACKGROUND_PIDS[@]}"; do
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	ENVIRONMENT_BACKGROUND_PIDS=()
	if [[ -n "$ENVIRONMENT_REGISTERED_BINFMT" ]]; then
		echo -1 >"$ENVIRONMENT_REGISTERED_BINFMT" 2>/dev/null || true
		ENVIRONMENT_REGISTERED_BINFMT=""
	fi
	if [[ -n "$ENVIRONMENT_STARTED_DOCKERD_PID" ]]; then
		output::step "Stopping the Docker engine this run started"
		kill "$ENVIRONMENT_STARTED_DOCKERD_PID" 2>/dev/null || true
		local waited
		for waited in $(seq 1 30); do
			kill -0 "$ENVIRONMENT_STARTED_DOCKERD_PID" 2>/dev/null || break
			sleep 1
		done
		ENVIRONMENT_STARTED_DOCKERD_PID=""
	fi
}

# A venv of its own keeps the harness's Python packages off the machine's Python.
# Usage: environment::python_venv
environment::python_venv() {
	local requirements="${ENVIRONMENT_ROOT}/tests/requirements.txt"
	local stamp="${ENVIRONMENT_VENV}/.requirements"
	if [[ -x "${ENVIRONMENT_VENV}/bin/python" ]] && cmp -s "$requirements" "$stamp"; then
		return 0
	fi
	output::step "Preparing the Python environment (.venv)"
	python3 -m venv "$ENVIRONMENT_VENV"
	"${ENVIRONMENT_VENV}/bin/pip" install --quiet --disable-pip-version-check -r "$requirements"
	cp "$requirements" "$stamp"
}

# Usage: environment::harness ARGS... (python -m harness ARGS...)
environment::harness() {
	PYTHONPATH="${ENVIRONMENT_ROOT}/tests" "${ENVIRONMENT_VENV}/bin/python" -m harness "$@"
}

# Usage: environment::prepare (all of the above, with the services stopped on exit)
environment::prepare() {
	environment::require_root
	environment::install_system_packages
	trap environment::stop_started_services EXIT
	environment::enable_arm64_emulation
	environment::start_docker
	environment::python_venv
}
