// Internal entry points of the attention kernels (attention_dispatch.cu picks one).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace l2e {
namespace cuda {

// Tensor-core flash attention (attention_fwd.cu / attention_bwd.cu), hd 64 or 128.
// tiles: num_tiles (sequence, first row) pairs of kAttentionTileRows rows (core/backend.h), one block
// each (or one block per two of them: see the files' headers).
// variant: an index into flash_fwd_variants() / flash_bwd_variants() (tile shapes, warps, stages;
// 0 = "default", the shapes used unless one is named); one without an instantiation at hd throws.
std::vector<std::string> flash_fwd_variants();
void flash_fwd(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, int hd,
               const int32_t* tiles, int num_tiles, void* out, float* lse, int variant, cudaStream_t s);
// dq_accum: flash_bwd_workspace(T, nh, hd) bytes of scratch (the fp32 dQ sums).
size_t flash_bwd_workspace(int T, int nh, int hd);
std::vector<std::string> flash_bwd_variants();
void flash_bwd(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
               const int32_t* cu, int T, int nh, int nkv, int hd, const int32_t* tiles, int num_tiles, float* dq_accum,
               void* dq, void* dk, void* dv, int variant, cudaStream_t s);

// The backward with a warp tiling per product, P and dS through shared memory (attention_bwd_split.cu),
// hd 128: adds dQ / scale into dq_accum (zeroed by the caller), writes dk, dv. A variant of flash_bwd.
void flash_bwd_split_hd128(const void* q, const void* k, const void* v, const void* dout, const float* lse,
                           const float* Dvec, const int32_t* cu, int T, int nh, int nkv, const int32_t* tiles,
                           int num_tiles, float* dq_accum, void* dk, void* dv, cudaStream_t s);

// The wgmma backward for sm_90a (attention_bwd_sm90.cu), hd 64 or 128, 2 or 3 pipeline stages, loaded by
// cp.async or (producer) by a TMA producer warp, dQ added by atomics or (tma_dq: producer, 2 stages) by TMA
// reduce-add: adds dQ / scale into dq_accum (zeroed by the caller), writes dk, dv. Variants of flash_bwd;
// run where sm90_fwd_available().
void flash_bwd_sm90(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
                    const int32_t* cu, int T, int nh, int nkv, int hd, const int32_t* tiles, int num_tiles,
                    float* dq_accum, void* dk, void* dv, int stages, bool producer, bool tma_dq, cudaStream_t s);

// wgmma + TMA forward for sm_90a (attention_sm90.cu), hd 64 or 128; available only on a compute
// capability 9.0 device whose loaded image is the sm_90a one (checked once by a probe kernel).
bool sm90_fwd_available();
void flash_fwd_sm90(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv, int hd,
                    const int32_t* tiles, int num_tiles, void* out, float* lse, cudaStream_t s);
// The same with two consumer warpgroups per block (128 query rows: two schedule tiles)
// (attention_sm90wg2.cu); pingpong: the two take turns issuing their products (kernel "sm90pp").
// variant: an index into flash_fwd_sm90wg2_variants() (key tile and stages; 0 = "default"). Available
// where flash_fwd_sm90 is.
std::vector<std::string> flash_fwd_sm90wg2_variants();
void flash_fwd_sm90wg2(const void* q, const void* k, const void* v, const int32_t* cu, int T, int nh, int nkv,
                       int hd, const int32_t* tiles, int num_tiles, void* out, float* lse, bool pingpong,
                       int variant, cudaStream_t s);

// One thread per row, fp32, any hd <= 256 (attention_simple.cu): small models and cross-checks.
void simple_fwd(const void* q, const void* k, const void* v, const int32_t* cu, int B, int T, int nh, int nkv, int hd,
                void* out, float* lse, cudaStream_t s);
void simple_bwd(const void* q, const void* k, const void* v, const void* dout, const float* lse, const float* Dvec,
                const int32_t* cu, int B, int T, int nh, int nkv, int hd, void* dq, void* dk, void* dv,
                cudaStream_t s);

}  // namespace cuda
}  // namespace l2e
