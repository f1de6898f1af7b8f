#!/usr/bin/env bash
# install_deps.sh: installs the Debian packages irepa needs to build and
# test, skipping those already present (docs/dependencies.md says why each
# one is there). Uses sudo when not run as root.
set -euo pipefail

packages=(
  build-essential cmake pkg-config   # the C toolchain and the build
  flex bison                         # the .irg lexer and parser
  libcmocka-dev                      # unit tests
  libjansson-dev                     # safetensors JSON headers, .irx program headers
  libopenblas-dev                    # GEMMs of the CPU backends (cblas)
  zlib1g-dev                         # gzip'ed IDX files (Fashion-MNIST)
  libpng-dev                         # PNG images of image-folder data sets (runtime/imagefolder.c)
  libjpeg-dev                        # JPEG images of image-folder data sets (libjpeg-turbo on Debian)
  libyaml-dev                        # YAML configs of irepa-run train
  libcairo2-dev                      # PNG charts of results (runtime/plot.c, irepa-run plot)
  dataset-fashion-mnist              # the default training data
  clang libclang-rt-dev              # libFuzzer and the sanitizer runtimes
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install_deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
echo "install_deps: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
