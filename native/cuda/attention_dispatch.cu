// The attention ops of the CUDA backend: which kernel runs (AttentionKernel, kernels.h): the wgmma +
// TMA forwards on sm_90a (one or two consumer warpgroups per block, the two taking turns or not), the mma.sync kernels for hd 64 / 128 elsewhere, the simple kernel otherwise
// or when chosen (cross-checks); the backward's D_i = dO_i . o_i row dots.
#include "cuda/attention_launch.h"
#include "cuda/cuda_check.h"
#include "cuda/device_utils.cuh"
#include "cuda/kernels.h"

namespace l2e {
namespace cuda {

namespace {

// D[h, t] = dO[t, h, :] . O[t, h, :], one warp per (token, head), fp32.
__global__ void row_dot_kernel(const bf16* dout, const bf16* out, int T, int nh, int hd, float* D) {
  const size_t warp = (size_t(blockIdx.x) * blockDim.x + threadIdx.x) / 32;
  const int lane = threadIdx.x & 31;
  if (warp >= size_t(T) * nh) return;
  const size_t t = warp / nh, h = warp % nh;
  const bf16* a = dout + (t * nh + h) * hd;
  const bf16* b = out + (t * nh + h) * hd;
  float s = 0.0f;
  for (int c = lane; c < hd; c += 32) s += to_f(a[c]) * to_f(b[c]);
  s = warp_sum(s);
  if (lane == 0) D[h * T + t] = s;
}

}  // namespace

AttentionKernel parse_attention_kernel(const std::string& name, const std::string& what) {
  if (name == "auto") return AttentionKernel::Auto;
  if (name == "simple") return AttentionKernel::Simple;
  if (name == "sm80") return AttentionKernel::Sm80;
  if (name == "sm90") return AttentionKernel::Sm90;
  if (name == "sm90wg2") return AttentionKernel::Sm90wg2;
  if (name == "sm90pp") return AttentionKernel::Sm90pp;
  throw Error(what + ": unknown attention kernel '" + name + "' (auto, simple, sm80, sm90, sm90wg2 or sm90pp)");
}

bool attention_has_fast_path(int hd) { return hd == 64 || hd == 128; }

AttentionVariant parse_attention_variant(const std::string& name, const std::string& what) {
  AttentionVariant v;
  if (name.empty() || name == "default") return v;
  const std::vector<std::string> fwd = flash_fwd_variants(), bwd = flash_bwd_variants(),
                                 wg2 = flash_fwd_sm90wg2_variants();
  for (size_t i = 1; i < fwd.size(); i++)
    if (fwd[i] == name) v.fwd = int(i);
  for (size_t i = 1; i < bwd.size(); i++)
    if (bwd[i] == name) v.bwd = int(i);
  for (size_t i = 1; i < wg2.size(); i++)
    if (wg2[i] == name) v.wg2 = int(i);
  if (v.fwd == 0 && v.bwd == 0 && v.wg2 == 0) {
    std::string known;
    for (const std::string& n : attention_variants()) known += (known.empty() ? "" : ", ") + n.substr(4);
    throw Error(what + ": unknown attention variant '" + name + "' (" + known + ")");
  }
  return v;
}

std::vector<std::string> attention_variants() {
  std::vector<std::string> out;
  for (const std::string& n : flash_fwd_variants()) out.push_back("fwd:" + n);
  for (const std::string& n : flash_bwd_variants()) out.push_back("bwd:" + n);
  for (const std::string& n : flash_fwd_sm90wg2_variants()) out.push_back("wg2:" + n);
  return out;
}

namespace {

const char* kernel_name(AttentionKernel k) {
  switch (k) {
    case AttentionKernel::Sm90: return "sm90";
    case AttentionKernel::Sm90wg2: return "sm90wg2";
    case AttentionKernel::Sm90pp: return "sm90pp";
    default: return "sm80";
  }
}

bool is_sm90(AttentionKernel k) {
  return k == AttentionKernel::Sm90 || k == AttentionKernel::Sm90wg2 || k == AttentionKernel::Sm90pp;
}

// The forward kernel that runs: never Auto.
AttentionKernel resolve(AttentionKernel k, int hd) {
  if (k == AttentionKernel::Simple) return k;
  if (k == AttentionKernel::Auto) {
    if (!attention_has_fast_path(hd)) return AttentionKernel::Simple;
    // sm90wg2: 290 / 351 TFLOP/s against sm90's 230 / 258 (H200, S = 2048 / 8192, bench/results/)
    return sm90_fwd_available() ? AttentionKernel::Sm90wg2 : AttentionKernel::Sm80;
  }
  if (!attention_has_fast_path(hd))
    throw Error(std::string("attention kernel '") + kernel_name(k) + "' has no head_dim " + std::to_string(hd) +
                " path (64 or 128; 'simple' or 'auto' take any head_dim)");
  if (is_sm90(k) && !sm90_fwd_available())
    throw Error(std::string("attention kernel '") + kernel_name(k) +
                "' needs a compute capability 9.0 GPU (H100/H200) and a build with sm_90a");
  return k;
}

}  // namespace

void attention_fwd(const void* q, const void* k, const void* v, const int32_t* cu, int B, int T, int nh, int nkv,
                   int hd, const int32_t* tiles, int num_tiles, void* out, float* lse, AttentionKernel kernel,
                   AttentionVariant variant, cudaStream_t s) {
  const AttentionKernel run = resolve(kernel, hd);  // checked even for an empty batch
  const char* run_name = run == AttentionKernel::Simple ? "simple" : kernel_name(run);
  if (variant.fwd != 0 && run != AttentionKernel::Sm80)
    throw Error("attention variant '" + flash_fwd_variants()[variant.fwd] +
                "' is a tile shape of the sm80 forward, not of '" + run_name + "'");
  if (variant.wg2 != 0 && run != AttentionKernel::Sm90wg2 && run != AttentionKernel::Sm90pp)
    throw Error("attention variant '" + flash_fwd_sm90wg2_variants()[variant.wg2] +
                "' is a tile shape of the sm90wg2 and sm90pp forwards, not of '" + run_name + "'");
  if (T == 0) return;
  if (run == AttentionKernel::Sm90) flash_fwd_sm90(q, k, v, cu, T, nh, nkv, hd, tiles, num_tiles, out, lse, s);
  else if (run == AttentionKernel::Sm90wg2 || run == AttentionKernel::Sm90pp)
    flash_fwd_sm90wg2(q, k, v, cu, T, nh, nkv, hd, tiles, num_tiles, out, lse, run == AttentionKernel::Sm90pp,
                      variant.wg2, s);
  else if (run == AttentionKernel::Sm80)
    flash_fwd(q, k, v, cu, T, nh, nkv, hd, tiles, num_tiles, out, lse, variant.fwd, s);
  else simple_fwd(q, k, v, cu, B, T, nh, nkv, hd, out, lse, s);
}

namespace {
// The workspace holds D (a float per row), then the flash kernels' fp32 dQ accumulator from the next
// 256-byte boundary (a TMA tensor map's global address must be 16-byte aligned: the sm90 backward's
// dQ reduce-add): its offset in floats.
size_t dq_accum_offset(size_t rows) { return (rows + 63) & ~size_t(63); }
}  // namespace

size_t attention_bwd_workspace(int T, int nh, int hd) {
  return dq_accum_offset(size_t(T) * nh) * sizeof(float) +
         (attention_has_fast_path(hd) ? flash_bwd_workspace(T, nh, hd) : 0);
}

void attention_bwd(const void* q, const void* k, const void* v, const void* out, const float* lse,
                   const void* dout, const int32_t* cu, int B, int T, int nh, int nkv, int hd,
                   const int32_t* tiles, int num_tiles, void* dq, void* dk, void* dv, float* workspace,
                   AttentionKernel kernel, AttentionVariant variant, cudaStream_t s) {
  const AttentionKernel run = resolve(kernel, hd);
  if (variant.bwd != 0 && run == AttentionKernel::Simple)
    throw Error("attention variant '" + flash_bwd_variants()[variant.bwd] +
                "' is a tile shape of the sm80 backward, not of 'simple'");
  if (T == 0) return;
  const size_t rows = size_t(T) * nh;
  L2E_LAUNCH(row_dot_kernel, grid_for(rows * 32, 256, 1u << 30), 256, 0, s)(static_cast<const bf16*>(dout),
                                                                    static_cast<const bf16*>(out), T, nh, hd, workspace);
  check_launch("attention_backward_rowdot");
  if (run != AttentionKernel::Simple)  // the sm90 kernels' backward is the sm_80 kernel
    flash_bwd(q, k, v, dout, lse, workspace, cu, T, nh, nkv, hd, tiles, num_tiles, workspace + dq_accum_offset(rows),
              dq, dk, dv, variant.bwd, s);
  else
    simple_bwd(q, k, v, dout, lse, workspace, cu, B, T, nh, nkv, hd, dq, dk, dv, s);
}

}  // namespace cuda
}  // namespace l2e
