# fmnist_subset.sh (sourced): fmnist_subset DIR N writes the first N < 256
# Fashion-MNIST training images and labels as IDX files under DIR (plain
# bytes under the .gz names: zlib reads them as they are), for runs that
# need the data format but not 60,000 images.
fmnist_subset() {
  local dir=$1 n=$2 src=${IREPA_FMNIST_SOURCE:-/usr/share/datasets/fashion-mnist}
  local count
  count=$(printf '\\x%02x' "$n")
  mkdir -p "$dir"
  { printf '\x00\x00\x08\x03\x00\x00\x00'; printf "$count"; printf '\x00\x00\x00\x1c\x00\x00\x00\x1c'
    zcat "$src/train-images-idx3-ubyte.gz" | tail -c +17 | head -c $((n * 784)) || true
  } >"$dir/train-images-idx3-ubyte.gz"
  { printf '\x00\x00\x08\x01\x00\x00\x00'; printf "$count"
    zcat "$src/train-labels-idx1-ubyte.gz" | tail -c +9 | head -c "$n" || true
  } >"$dir/train-labels-idx1-ubyte.gz"
}
