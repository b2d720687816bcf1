// The scalars of one AdamW step, derived exactly as torch.optim.AdamW does (Python doubles, then
// rounded to float32 where ATen rounds them). Shared by every backend so that all of them step the
// weights identically; the per-element order of operations is in cpu/adamw.cpp.
#pragma once

namespace l2e {

struct AdamwScalars {
  float decay;         // 1 - lr * wd
  float lerp_w;        // 1 - beta1 (ATen's lerp weight)
  float b2;            // beta2
  float one_minus_b2;  // 1 - beta2
  float bc2_sqrt;      // sqrt(1 - beta2^t)
  float eps;
  float neg_step;      // -lr / (1 - beta1^t)
  bool lerp_small;     // |lerp_w| < 0.5: ATen computes start + w (end - start), else end - (1-w)(end - start)
  bool decays;         // wd != 0
};

// Hyper-parameters arrive as float, but Python passes doubles and double(0.9f) != 0.9: each is first
// turned back into the shortest decimal that round-trips it (the number the user typed).
AdamwScalars adamw_scalars(float lr, float beta1, float beta2, float eps, float weight_decay, int step);

}  // namespace l2e
