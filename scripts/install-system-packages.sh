#!/usr/bin/env bash
# Installs the Debian packages the tests need when they are missing: PostgreSQL server binaries (the
# tests start throwaway servers) and Chromium (reports are rendered and checked in headless Chromium,
# and printed to PDF). Run as root (CI and the development machines are), or with sudo.
set -euo pipefail
missing=()
if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if ! command -v pdftotext >/dev/null 2>&1; then
  missing+=(poppler-utils)  # pdftotext/pdfinfo: the report test reads the printed PDF
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing system packages: ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
