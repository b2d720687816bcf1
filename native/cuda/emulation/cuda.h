// CUDA emulation build: the part of the CUDA driver API (cuda.h) the sm_90a kernels use, the tensor
// map of the Tensor Memory Accelerator. cuTensorMapEncodeTiled is implemented from its contract in
// the CUDA Driver API reference ("Tensor Map Object Management"), tensor_map.cpp; the copies that read
// a map are cp.async.bulk.tensor (ptx_sm90.cpp). Enumerator values are the driver's.
#pragma once
#include <cstdint>

enum CUresult { CUDA_SUCCESS = 0, CUDA_ERROR_INVALID_VALUE = 1 };

enum CUtensorMapDataType {
  CU_TENSOR_MAP_DATA_TYPE_UINT8 = 0,
  CU_TENSOR_MAP_DATA_TYPE_UINT16,
  CU_TENSOR_MAP_DATA_TYPE_UINT32,
  CU_TENSOR_MAP_DATA_TYPE_INT32,
  CU_TENSOR_MAP_DATA_TYPE_UINT64,
  CU_TENSOR_MAP_DATA_TYPE_INT64,
  CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
  CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
  CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
  CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
};
enum CUtensorMapInterleave { CU_TENSOR_MAP_INTERLEAVE_NONE = 0, CU_TENSOR_MAP_INTERLEAVE_16B, CU_TENSOR_MAP_INTERLEAVE_32B };
enum CUtensorMapSwizzle {
  CU_TENSOR_MAP_SWIZZLE_NONE = 0,
  CU_TENSOR_MAP_SWIZZLE_32B,
  CU_TENSOR_MAP_SWIZZLE_64B,
  CU_TENSOR_MAP_SWIZZLE_128B,
};
enum CUtensorMapL2promotion {
  CU_TENSOR_MAP_L2_PROMOTION_NONE = 0,
  CU_TENSOR_MAP_L2_PROMOTION_L2_64B,
  CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
  CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
};
enum CUtensorMapFloatOOBfill { CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE = 0, CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA };

using cuuint32_t = uint32_t;
using cuuint64_t = uint64_t;

// 128 opaque bytes, 64-byte aligned, as in the driver; the emulation keeps its decoded fields inside.
struct alignas(64) CUtensorMap {
  cuuint64_t opaque[16];
};

CUresult cuTensorMapEncodeTiled(CUtensorMap* tensorMap, CUtensorMapDataType tensorDataType, cuuint32_t tensorRank,
                                void* globalAddress, const cuuint64_t* globalDim, const cuuint64_t* globalStrides,
                                const cuuint32_t* boxDim, const cuuint32_t* elementStrides,
                                CUtensorMapInterleave interleave, CUtensorMapSwizzle swizzle,
                                CUtensorMapL2promotion l2Promotion, CUtensorMapFloatOOBfill oobFill);

namespace l2e {
namespace emu {
// The fields an encoded map holds (tensor_map.cpp writes them into CUtensorMap::opaque).
struct TensorMapFields {
  uint32_t magic;                                    // kTensorMapMagic once encoded
  uint8_t rank, elem_bytes, swizzle_bytes, nan_fill;  // swizzle_bytes: 0 (none), 32, 64 or 128
  uint8_t float32;                                    // CU_TENSOR_MAP_DATA_TYPE_FLOAT32
  const char* base;
  uint64_t dim[5];
  uint64_t stride[4];  // bytes between consecutive indices of dimensions 1..rank-1 (dimension 0: elem_bytes)
  uint16_t box[5];
};
constexpr uint32_t kTensorMapMagic = 0x4c32544du;
const TensorMapFields* tensor_map_fields(const CUtensorMap* map);  // nullptr unless encoded
}  // namespace emu
}  // namespace l2e
