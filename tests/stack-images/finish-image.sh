#!/usr/bin/env bash
# Runs as root inside the container as the last step of building a stack's run image: creates
# the users Heroku's image has and records what the image is, for the fidelity tests.
#
# Usage: finish-image.sh STACK CREATE_HEROKU_USER(yes|no) RECORD_DIR
set -euo pipefail

stack="$1"
create_heroku_user="$2"
record_dir="$3"

# Ubuntu's own container images ship an `ubuntu` user with uid 1000; Heroku's give that uid
# to `heroku`. A debootstrapped tree has neither, but guard against both.
if getent passwd ubuntu >/dev/null; then
	userdel --remove ubuntu 2>/dev/null || userdel ubuntu
fi
if [[ "$create_heroku_user" == yes ]] && ! getent passwd heroku >/dev/null; then
	groupadd --gid 1000 heroku
	useradd --uid 1000 --gid 1000 --shell /bin/bash --create-home heroku
fi

mkdir -p "$record_dir"
printf '%s\n' "$stack" >"${record_dir}/stack"
