#!/usr/bin/env bash
# Headless Chromium for the report's browser test (tests/test_report.py), from Debian's packages.
# Where there is no apt-get, or no root, it says so and the test skips with the same reason.
set -uo pipefail
for name in chromium-headless-shell chromium chromium-browser; do
  if command -v "$name" >/dev/null; then exit 0; fi
done
if ! command -v apt-get >/dev/null; then
  echo "no apt-get here: install chromium-headless-shell (or chromium) to run the report's browser test" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
    echo "not root and no password-less sudo: apt-get install chromium-headless-shell to run the report's browser test" >&2
    exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends chromium-headless-shell fonts-dejavu-core \
  || { echo "apt-get could not install chromium-headless-shell: the report's browser test will skip" >&2; exit 1; }
