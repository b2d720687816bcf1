// cuTensorMapEncodeTiled for the emulation build, from the CUDA Driver API reference ("Tensor Map
// Object Management", cuTensorMapEncodeTiled). The checks are the documented requirements; a
// violation returns CUDA_ERROR_INVALID_VALUE as the driver does:
//   - tensorRank in 1..5 (3..5 with interleave; the emulation supports INTERLEAVE_NONE only);
//   - globalAddress 16-byte aligned;
//   - globalDim[i] in 1..2^32; globalStrides[i] (bytes, dimensions 1..rank-1) multiples of 16 and
//     below 2^40;
//   - boxDim[i] in 1..256, and boxDim[0] * element size a multiple of 16 bytes;
//   - elementStrides[i] in 1..8 (the emulation supports 1 only: every element of the box);
//   - with a swizzle, boxDim[0] * element size at most the swizzle span (32, 64 or 128 bytes);
//   - FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA only for floating-point types.
#include <cstring>

#include "cuda.h"

using namespace l2e::emu;

namespace {

uint32_t elem_bytes(CUtensorMapDataType t) {
  switch (t) {
    case CU_TENSOR_MAP_DATA_TYPE_UINT8: return 1;
    case CU_TENSOR_MAP_DATA_TYPE_UINT16:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT16:
    case CU_TENSOR_MAP_DATA_TYPE_BFLOAT16: return 2;
    case CU_TENSOR_MAP_DATA_TYPE_UINT32:
    case CU_TENSOR_MAP_DATA_TYPE_INT32:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT32: return 4;
    case CU_TENSOR_MAP_DATA_TYPE_UINT64:
    case CU_TENSOR_MAP_DATA_TYPE_INT64:
    case CU_TENSOR_MAP_DATA_TYPE_FLOAT64: return 8;
  }
  return 0;
}

}  // namespace

CUresult cuTensorMapEncodeTiled(CUtensorMap* tensorMap, CUtensorMapDataType tensorDataType, cuuint32_t tensorRank,
                                void* globalAddress, const cuuint64_t* globalDim, const cuuint64_t* globalStrides,
                                const cuuint32_t* boxDim, const cuuint32_t* elementStrides,
                                CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle, CUtensorMapL2promotion,
                                CUtensorMapFloatOOBfill oobFill) {
  if (!tensorMap || !globalAddress) return CUDA_ERROR_INVALID_VALUE;
  const uint32_t es = elem_bytes(tensorDataType);
  if (es == 0 || tensorRank < 1 || tensorRank > 5 || interleave != CU_TENSOR_MAP_INTERLEAVE_NONE)
    return CUDA_ERROR_INVALID_VALUE;
  if (reinterpret_cast<uintptr_t>(globalAddress) % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  TensorMapFields f{};
  f.magic = kTensorMapMagic;
  f.base = static_cast<const char*>(globalAddress);
  f.rank = uint8_t(tensorRank);
  f.elem_bytes = uint8_t(es);
  for (uint32_t i = 0; i < tensorRank; i++) {
    if (globalDim[i] == 0 || globalDim[i] > (uint64_t(1) << 32)) return CUDA_ERROR_INVALID_VALUE;
    if (boxDim[i] == 0 || boxDim[i] > 256) return CUDA_ERROR_INVALID_VALUE;
    if (elementStrides[i] != 1) return CUDA_ERROR_INVALID_VALUE;  // 1..8 in the driver; 1 here
    f.dim[i] = globalDim[i];
    f.box[i] = uint16_t(boxDim[i]);
    if (i > 0) {
      const uint64_t s = globalStrides[i - 1];
      if (s % 16 != 0 || s >= (uint64_t(1) << 40)) return CUDA_ERROR_INVALID_VALUE;
      f.stride[i - 1] = s;
    }
  }
  const uint64_t inner = uint64_t(boxDim[0]) * es;
  if (inner % 16 != 0) return CUDA_ERROR_INVALID_VALUE;
  switch (swizzle) {
    case CU_TENSOR_MAP_SWIZZLE_NONE: f.swizzle_bytes = 0; break;
    case CU_TENSOR_MAP_SWIZZLE_32B: f.swizzle_bytes = 32; break;
    case CU_TENSOR_MAP_SWIZZLE_64B: f.swizzle_bytes = 64; break;
    case CU_TENSOR_MAP_SWIZZLE_128B: f.swizzle_bytes = 128; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  if (f.swizzle_bytes && inner > f.swizzle_bytes) return CUDA_ERROR_INVALID_VALUE;
  const bool is_float = tensorDataType == CU_TENSOR_MAP_DATA_TYPE_FLOAT16 ||
                        tensorDataType == CU_TENSOR_MAP_DATA_TYPE_FLOAT32 ||
                        tensorDataType == CU_TENSOR_MAP_DATA_TYPE_FLOAT64 ||
                        tensorDataType == CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
  if (oobFill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA && !is_float) return CUDA_ERROR_INVALID_VALUE;
  f.nan_fill = uint8_t(oobFill == CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA);
  f.float32 = uint8_t(tensorDataType == CU_TENSOR_MAP_DATA_TYPE_FLOAT32);
  static_assert(sizeof(TensorMapFields) <= sizeof(CUtensorMap), "tensor map fields exceed 128 bytes");
  std::memset(tensorMap, 0, sizeof(CUtensorMap));
  std::memcpy(tensorMap, &f, sizeof(f));
  return CUDA_SUCCESS;
}

namespace l2e {
namespace emu {
const TensorMapFields* tensor_map_fields(const CUtensorMap* map) {
  const auto* f = reinterpret_cast<const TensorMapFields*>(map);
  return f->magic == kTensorMapMagic ? f : nullptr;
}
}  // namespace emu
}  // namespace l2e
