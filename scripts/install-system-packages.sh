#!/usr/bin/env bash
# Installs the Debian packages the project needs when they are missing, for one of two purposes:
#   run   what the pipeline itself needs: Chromium (the quarterly report is printed to PDF in headless
#         Chromium). `make run` installs these: no step of the build may depend on a test-only package.
#   test  what the tests need on top: PostgreSQL server binaries (tests start throwaway servers),
#         poppler-utils (pdftotext/pdfinfo read the printed PDF) and tmux (the `zi sql` console is tested in
#         a real terminal).
# Run as root (CI and the development machines are), or with sudo.
set -euo pipefail
purpose="${1:-test}"
missing=()
if ! command -v chromium >/dev/null 2>&1; then
  missing+=(chromium)
fi
if [ "$purpose" = "test" ]; then
  if ! command -v initdb >/dev/null 2>&1 && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
  fi
  if ! command -v pdftotext >/dev/null 2>&1; then
    missing+=(poppler-utils)
  fi
  if ! command -v tmux >/dev/null 2>&1; then
    missing+=(tmux)
  fi
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "Installing system packages ($purpose): ${missing[*]}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
