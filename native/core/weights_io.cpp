// Reads tensors out of safetensors files with pread, after the TypeScript side has validated the
// header (offsets inside the data section, non-overlapping, byte length = dtype x shape). The bytes
// never pass through JS. The size check is repeated here: a file changed since validation is an error.
#include "core/weights_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cstring>
#include <vector>

namespace l2e {

void read_file_range(const std::string& path, uint64_t offset, uint64_t length, void* dst) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open " + path + ": " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0 || uint64_t(st.st_size) < offset + length) {
    ::close(fd);
    throw Error(path + ": tensor bytes [" + std::to_string(offset) + ", " + std::to_string(offset + length) +
                ") lie outside the file (" + std::to_string(uint64_t(st.st_size)) + " bytes)");
  }
  char* out = static_cast<char*>(dst);
  uint64_t done = 0;
  while (done < length) {
    const size_t want = size_t(std::min<uint64_t>(length - done, 1u << 30));
    const ssize_t got = ::pread(fd, out + done, want, off_t(offset + done));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      const std::string why = got < 0 ? std::strerror(errno) : "unexpected end of file";
      ::close(fd);
      throw Error("reading " + path + ": " + why);
    }
    done += uint64_t(got);
  }
  ::close(fd);
}

namespace {
// The first index in [0, n) whose exponent bits (mask) are all ones: NaN or infinity. Blocks are first
// tested with a branch-free OR (vectorised), so a clean tensor costs one pass at memory speed.
template <typename T>
size_t first_all_ones(const T* v, size_t n, T mask) {
  constexpr size_t kBlock = 4096;
  for (size_t b = 0; b < n; b += kBlock) {
    const size_t e = std::min(n, b + kBlock);
    T any = 0;
    for (size_t i = b; i < e; i++) any |= T((v[i] & mask) == mask);
    if (!any) continue;
    for (size_t i = b; i < e; i++)
      if ((v[i] & mask) == mask) return i;
  }
  return n;
}
}  // namespace

size_t first_non_finite(const void* p, size_t n, DType dtype) {
  if (dtype == DType::F32) return first_all_ones(static_cast<const uint32_t*>(p), n, uint32_t(0x7f800000u));
  return first_all_ones(static_cast<const uint16_t*>(p), n, uint16_t(dtype == DType::BF16 ? 0x7f80u : 0x7c00u));
}

namespace {
// "NaN", "Inf" or "-Inf": what the non-finite value at p is.
std::string non_finite_name(const void* p, DType dtype) {
  bool nan = false, neg = false;
  if (dtype == DType::F32) {
    uint32_t u;
    std::memcpy(&u, p, 4);
    nan = (u & 0x007fffffu) != 0;
    neg = (u >> 31) != 0;
  } else {
    uint16_t h;
    std::memcpy(&h, p, 2);
    nan = (h & (dtype == DType::BF16 ? 0x007fu : 0x03ffu)) != 0;
    neg = (h >> 15) != 0;
  }
  return nan ? "NaN" : neg ? "-Inf" : "Inf";
}
}  // namespace

void load_tensor(Model& model, const TensorSource& src, size_t chunk_bytes) {
  const ParamInfo& p = model.param(src.name);
  const size_t esize = dtype_size(src.dtype);
  if (src.dtype != DType::F32 && src.dtype != DType::F16 && src.dtype != DType::BF16)
    throw Error(src.path + ": tensor " + src.name + " has unsupported dtype " + dtype_name(src.dtype));
  if (src.length != uint64_t(p.numel) * esize)
    throw Error(src.path + ": tensor " + src.name + " has " + std::to_string(src.length) + " bytes, the model expects " +
                std::to_string(uint64_t(p.numel) * esize));
  // In pieces: loading holds one piece, never a whole tensor, besides the model.
  const size_t chunk = std::max<size_t>(1, chunk_bytes / esize);
  model.set_param_chunked(src.name, src.dtype, chunk, [&](size_t first, size_t count, void* dst) {
    read_file_range(src.path, src.offset + uint64_t(first) * esize, uint64_t(count) * esize, dst);
    // checked here, where the piece was just read: a NaN weight would make every embedding NaN
    const size_t bad = first_non_finite(dst, count, src.dtype);
    if (bad < count)
      throw Error(src.path + ": tensor \"" + (src.file_name.empty() ? src.name : src.file_name) + "\" has a non-finite value (" +
                  non_finite_name(static_cast<const char*>(dst) + bad * esize, src.dtype) + " at index " +
                  std::to_string(first + bad) + ")");
  });
  if (src.dtype == DType::F32 && model.precision() == Precision::F32 && model.param_buffer().dtype != DType::F32)
    model.remember_f32_source(src.name, Model::F32Source{src.path, src.offset});
}

}  // namespace l2e
