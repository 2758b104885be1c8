#!/usr/bin/env bash
# Makes sure the machine has the commands the project needs from outside PyPI and npm:
# `tools/system-packages.sh node npm chromium`. Missing ones are installed from Debian's
# packages where that is possible (root with apt-get, as on CI); elsewhere the script names
# them and the package that brings each, and fails.
set -euo pipefail

declare -A package_of=([node]=nodejs [npm]=npm [chromium]=chromium)
declare -A found_at=([chromium]="${CHROMIUM_PATH:-/usr/bin/chromium}")  # what Playwright starts

missing=()
for command in "$@"; do
  if [[ -n "${found_at[$command]:-}" ]]; then
    [[ -x "${found_at[$command]}" ]] || missing+=("${package_of[$command]}")
  else
    command -v "$command" >/dev/null || missing+=("${package_of[$command]}")
  fi
done
((${#missing[@]})) || exit 0

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
  echo "Installing Debian packages: ${missing[*]}" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  exit 0
fi
echo "Missing: ${missing[*]} (Debian packages of those names; e.g. sudo apt-get install ${missing[*]})." >&2
echo "The browser tests need Chromium (/usr/bin/chromium, or CHROMIUM_PATH); Azurite needs Node.js 20 and npm." >&2
exit 1
