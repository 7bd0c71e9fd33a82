#!/usr/bin/env bash
# Installs the Debian packages llm8 needs to build and test, when they are missing.
set -euo pipefail
# python3-numpy: the test that builds a llama.cpp-style GGUF of the Llama 3 vocabulary
# clang, libclang-rt-14-dev: the libFuzzer targets (scripts/fuzz.sh)
# libmicrohttpd-dev: llm8 serve; curl: its tests; chromium: the chat page's test (headless);
# nodejs and npm, only when there is no node: the tests with real clients (tests/server, npm ci)
pkgs=(gcc make cmake pkg-config libpcre2-dev libjansson-dev libmicrohttpd-dev curl python3-numpy clang libclang-rt-14-dev
  chromium)
command -v node >/dev/null || pkgs+=(nodejs npm)
# the aarch64 stage (scripts/test_arm.sh): Debian's cross compiler, qemu-user, and the arm64
# builds of the libraries through multiarch (the arm64 architecture is enabled below if needed)
pkgs+=(gcc-aarch64-linux-gnu qemu-user libpcre2-dev:arm64 libjansson-dev:arm64 libmicrohttpd-dev:arm64)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "llm8: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
if [[ " ${missing[*]}" == *":arm64"* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  $sudo dpkg --add-architecture arm64
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
