#!/usr/bin/env bash
# Build output in Heroku's conventions: "-----> " starts a step, seven spaces indent its
# details, and problems go to stderr as lines prefixed " !     " so they stand out in the log.

# Usage: output::step "Installing jemalloc"
output::step() {
	echo "-----> $*"
}

# Usage: output::detail "Built in 42 s"
output::detail() {
	echo "       $*"
}

# Usage: output::warning "line" ["line" ...]
output::warning() {
	local line
	for line in "$@"; do
		echo " !     ${line}"
	done >&2
}

# Usage: output::error "what went wrong" ["how to fix it" ...]
# Never returns: the build stops with exit status 1.
output::error() {
	local line
	for line in "$@"; do
		echo " !     ${line}"
	done >&2
	exit 1
}
