// dlopen-based cuBLAS loader (see cublas_loader.h).
#include "cuda/cublas_loader.h"

#include <dlfcn.h>

#include <cstdlib>
#include <mutex>
#include <vector>

#include "core/tensor.h"

namespace l2e {
namespace cuda {

namespace {

template <typename Fn>
void resolve(void* lib, const char* name, Fn& out, bool required, const std::string& path) {
  out = reinterpret_cast<Fn>(dlsym(lib, name));
  if (!out && required) throw Error("cuBLAS library " + path + " has no symbol " + name);
}

#ifdef L2E_CUDA_EMULATION
}  // namespace
}  // namespace cuda
namespace emu {
cuda::Cublas emulated_cublas();  // emulation/cublas.cpp: cublasGemmEx from its documented contract
}  // namespace emu
namespace cuda {
namespace {
Cublas load() { return emu::emulated_cublas(); }
#else
Cublas load() {
  std::vector<std::string> names;
  const char* env = std::getenv("L2E_CUBLAS");
  if (env && *env) names.push_back(env);
  names.push_back("libcublas.so.13");
  names.push_back("libcublas.so.12");
  std::string tried;
  for (const auto& n : names) {
    void* lib = dlopen(n.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
      const char* why = dlerror();
      tried += "\n  " + n + ": " + (why ? why : "not found");
      continue;
    }
    Cublas c;
    c.path = n;
    resolve(lib, "cublasCreate_v2", c.create, true, n);
    resolve(lib, "cublasDestroy_v2", c.destroy, true, n);
    resolve(lib, "cublasSetStream_v2", c.set_stream, true, n);
    resolve(lib, "cublasGemmEx", c.gemm_ex, true, n);
    resolve(lib, "cublasGetStatusString", c.status_string, false, n);
    return c;  // the library stays open for the life of the process
  }
  throw Error(
      "libcublas.so.13/.12 not found — install the CUDA 12/13 cuBLAS runtime or set L2E_CUBLAS to the path of "
      "libcublas.so (tried:" + tried + ")");
}
#endif

}  // namespace

const Cublas& cublas() {
  static std::once_flag once;
  static Cublas lib;
  static std::string error;
  std::call_once(once, [] {
    try {
      lib = load();
    } catch (const std::exception& e) {
      error = e.what();
    }
  });
  if (!error.empty()) throw Error(error);
  return lib;
}

void cublas_check(int status, const char* what) {
  if (status == 0) return;
  const Cublas& c = cublas();
  std::string s = c.status_string ? c.status_string(status) : ("status " + std::to_string(status));
  throw Error(std::string("cuBLAS ") + what + " failed: " + s);
}

}  // namespace cuda
}  // namespace l2e
