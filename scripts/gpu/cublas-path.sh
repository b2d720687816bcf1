# Sourced by run.sh and profile.sh on the GPU machine. The addon dlopens libcublas.so.13/.12 at run
# time. When the loader's cache has neither (a toolkit not registered with ldconfig; PyTorch's wheel
# keeps its own copy), put the first folder that holds one (and its libcublasLt) on LD_LIBRARY_PATH,
# or every CUDA test skips and every bench fails with "libcublas ... not found".
if [ -z "${L2E_CUBLAS:-}" ] && ! ldconfig -p 2>/dev/null | grep -q 'libcublas\.so\.1[23] '; then
  lib=$(find /usr/local/cuda/lib64 /usr/local/cuda/targets /usr/local /opt /usr/lib \
    -name 'libcublas.so.1[23]' 2>/dev/null | sort -r | head -1)
  if [ -n "$lib" ]; then
    export LD_LIBRARY_PATH="$(dirname "$lib")${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    echo "cuBLAS: $lib (added to LD_LIBRARY_PATH)"
  else
    echo "note: no libcublas.so.13/.12 found; set L2E_CUBLAS to its path"
  fi
fi
