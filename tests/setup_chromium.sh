#!/usr/bin/env bash
# Installs Debian's Chromium for the dashboard tests (tests/test_service_dashboard.py drive it with Playwright
# at /usr/bin/chromium; Playwright's own browser download is never used). Safe to run twice.
set -euo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
/usr/bin/chromium --version
