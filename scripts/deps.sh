#!/usr/bin/env bash
# Installs the Debian packages llm8 needs to build and test, when they are missing.
set -euo pipefail
# python3-numpy: the test that builds a llama.cpp-style GGUF of the Llama 3 vocabulary
# clang, libclang-rt-14-dev: the libFuzzer targets (scripts/fuzz.sh)
pkgs=(gcc make cmake pkg-config libpcre2-dev libjansson-dev python3-numpy clang libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "llm8: installing ${missing[*]}" >&2
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
