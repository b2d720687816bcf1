// Reads tensors out of safetensors files with pread, after the TypeScript side has validated the
// header (offsets inside the data section, non-overlapping, byte length = dtype x shape). The bytes
// never pass through JS. The size check is repeated here: a file changed since validation is an error.
#include "core/weights_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
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

void load_tensor(Model& model, const TensorSource& src) {
  const ParamInfo& p = model.param(src.name);
  const size_t esize = dtype_size(src.dtype);
  if (src.dtype != DType::F32 && src.dtype != DType::F16 && src.dtype != DType::BF16)
    throw Error(src.path + ": tensor " + src.name + " has unsupported dtype " + dtype_name(src.dtype));
  if (src.length != uint64_t(p.numel) * esize)
    throw Error(src.path + ": tensor " + src.name + " has " + std::to_string(src.length) + " bytes, the model expects " +
                std::to_string(uint64_t(p.numel) * esize));
  std::vector<char> staging(src.length);
  read_file_range(src.path, src.offset, src.length, staging.data());
  model.set_param(src.name, staging.data(), p.numel, src.dtype);
  if (src.dtype == DType::F32 && model.param_buffer().dtype != DType::F32)
    model.remember_f32_source(src.name, Model::F32Source{src.path, src.offset});
}

}  // namespace l2e
