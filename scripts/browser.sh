#!/usr/bin/env bash
# Make sure Debian's Chromium is there for the browser tests (Playwright drives
# it; it never downloads a browser of its own). Installs it when running as root.
set -u
if command -v chromium >/dev/null 2>&1; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
  echo "installing chromium from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1 \
    || { apt-get update >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium >/dev/null 2>&1; } \
    || echo "could not install chromium"
else
  echo "chromium is not installed: the browser tests will skip (sudo apt-get install chromium)"
fi
exit 0
