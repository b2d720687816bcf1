#pragma once
#include <cstdint>
#include <string>

#include "core/model.h"

namespace l2e {

// One tensor's bytes in a safetensors file (absolute offset), as validated by the TS loader.
struct TensorSource {
  std::string name;  // model parameter name (prefix already stripped)
  std::string file_name;  // the tensor's name in the file, for errors (empty: name)
  std::string path;
  uint64_t offset = 0;
  uint64_t length = 0;
  DType dtype = DType::F32;
};

void read_file_range(const std::string& path, uint64_t offset, uint64_t length, void* dst);
// Index of the first NaN or infinite value among n values of dtype (F32, F16, BF16) at p; n if none.
size_t first_non_finite(const void* p, size_t n, DType dtype);
// Reads the tensor in pieces of about chunk_bytes (whole rows; 16 MB unless a test says otherwise);
// a NaN or infinite value is an Error naming the file, the tensor and the value's index.
void load_tensor(Model& model, const TensorSource& src, size_t chunk_bytes = size_t(16) << 20);

}  // namespace l2e
