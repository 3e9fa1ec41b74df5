#!/usr/bin/env bash
# Headless Chromium (Debian's package) for the report tests (tests/report): they load a
# generated report with the network off and look at what it drew. Installed once when
# missing; apt keeps the downloaded packages in /var/cache/apt/archives, so a reinstall
# downloads nothing. Without root or apt-get this only says so: the browser tests then
# skip locally and fail under CI=true, which must not pass without looking.
set -euo pipefail
for name in chromium chromium-browser; do
  if command -v "$name" >/dev/null; then exit 0; fi
done
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "install-chromium: chromium is missing and this is not root with apt-get; install Debian's 'chromium' package for the report tests" >&2
  exit 0
fi
echo "install-chromium: installing Debian's chromium package (first time only)..." >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null 2>&1; then
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
command -v chromium >/dev/null
