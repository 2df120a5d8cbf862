#!/usr/bin/env bash
# System packages issuer needs beyond Python: a Simplified-Chinese CJK font for the letters,
# Pango for WeasyPrint, qpdf/poppler to check PDFs in tests, and Chromium for the browser tests.
# Installs only what is missing, and only when it can (root or password-less sudo); otherwise it
# says what to install. With arguments, installs those packages instead (`make bench`: wrk).
set -euo pipefail

default_packages=(fonts-noto-cjk libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b libharfbuzz-subset0 qpdf poppler-utils chromium)
if [ $# -gt 0 ]; then packages=("$@"); else packages=("${default_packages[@]}"); fi
missing=()
for package in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
    run=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    run=(sudo -n)
else
    echo "issuer needs these system packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "installing system packages: ${missing[*]}"
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
