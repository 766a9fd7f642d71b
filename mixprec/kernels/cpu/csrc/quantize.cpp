// Fused activation quantization for the CPU int8 GEMMs: one pass from float32 rows to the
// uint8 operand of a u8 x s8 GEMM, on exactly the simulation's grid:
//   q = clamp(round_half_even(x / scale), -qmax - 1, qmax),  u8 = q + offset.
// x / scale is an IEEE division (never a multiplication by 1/scale: that rounds differently
// at grid boundaries), so the integers equal mixprec.quant.fake.quantize bit for bit.
#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <vector>

namespace {

constexpr int64_t kGrain = 16;  // rows per parallel task
constexpr int64_t kLanes = 16;  // independent partial maxima (lets the compiler vectorize)

inline float abs_max(const float* x, int64_t k) {
  float lanes[kLanes] = {0.0f};
  int64_t j = 0;
  for (; j + kLanes <= k; j += kLanes) {
    for (int64_t l = 0; l < kLanes; ++l) lanes[l] = std::max(lanes[l], std::fabs(x[j + l]));
  }
  for (; j < k; ++j) lanes[0] = std::max(lanes[0], std::fabs(x[j]));
  return *std::max_element(lanes, lanes + kLanes);
}

inline void quantize_row(const float* x, uint8_t* out, int64_t k, float scale, float qmax,
                         float offset) {
  for (int64_t j = 0; j < k; ++j) {
    float q = std::nearbyint(x[j] / scale);
    q = std::min(std::max(q, -qmax - 1.0f), qmax);
    out[j] = static_cast<uint8_t>(static_cast<int32_t>(q + offset));
  }
}

inline void grid_row(const float* x, float* out, int64_t k, float scale, float qmax) {
  for (int64_t j = 0; j < k; ++j) {
    out[j] = std::min(std::max(std::nearbyint(x[j] / scale), -qmax - 1.0f), qmax);
  }
}

void check_rows(const torch::Tensor& x) {
  TORCH_CHECK(x.dim() == 2, "expected rows [M, K], got ", x.dim(), " dims");
  TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected float32 rows");
  TORCH_CHECK(x.is_contiguous(), "expected contiguous rows");
}

}  // namespace

// Static or per-row scales: scales has 1 element (one scale) or M (one per row).
torch::Tensor quantize_u8(torch::Tensor x, torch::Tensor scales, int64_t qmax, int64_t offset) {
  check_rows(x);
  const int64_t m = x.size(0), k = x.size(1);
  auto s = scales.to(torch::kFloat32).contiguous().reshape({-1});
  TORCH_CHECK(s.numel() == 1 || s.numel() == m, "scales must have 1 or M elements");
  auto out = torch::empty({m, k}, x.options().dtype(torch::kUInt8));
  const float* xp = x.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  uint8_t* op = out.data_ptr<uint8_t>();
  const bool per_row = s.numel() == m && m > 1;
  const float fq = static_cast<float>(qmax), fo = static_cast<float>(offset);
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      quantize_row(xp + i * k, op + i * k, k, per_row ? sp[i] : sp[0], fq, fo);
    }
  });
  return out;
}

// Dynamic per-row quantization: scale = max(absmax(row) / qmax, FLT_MIN), as
// mixprec.quant.fake.dynamic_qparams computes it for a symmetric grid. Returns (u8, scales [M, 1]).
std::vector<torch::Tensor> quantize_rows_u8(torch::Tensor x, int64_t qmax, int64_t offset) {
  check_rows(x);
  const int64_t m = x.size(0), k = x.size(1);
  auto out = torch::empty({m, k}, x.options().dtype(torch::kUInt8));
  auto scales = torch::empty({m, 1}, x.options());
  const float* xp = x.data_ptr<float>();
  uint8_t* op = out.data_ptr<uint8_t>();
  float* sp = scales.data_ptr<float>();
  const float fq = static_cast<float>(qmax), fo = static_cast<float>(offset);
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float* row = xp + i * k;
      const float scale = std::max(abs_max(row, k) / fq, FLT_MIN);
      sp[i] = scale;
      quantize_row(row, op + i * k, k, scale, fq, fo);
    }
  });
  return {out, scales};
}

// The grid values themselves as float32 (operands of exact float products of integers),
// with one scale or one per row; and with per-row dynamic scales, returned as [M, 1].
torch::Tensor grid_f32(torch::Tensor x, torch::Tensor scales, int64_t qmax) {
  check_rows(x);
  const int64_t m = x.size(0), k = x.size(1);
  auto s = scales.to(torch::kFloat32).contiguous().reshape({-1});
  TORCH_CHECK(s.numel() == 1 || s.numel() == m, "scales must have 1 or M elements");
  auto out = torch::empty_like(x);
  const float* xp = x.data_ptr<float>();
  const float* sp = s.data_ptr<float>();
  float* op = out.data_ptr<float>();
  const bool per_row = s.numel() == m && m > 1;
  const float fq = static_cast<float>(qmax);
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      grid_row(xp + i * k, op + i * k, k, per_row ? sp[i] : sp[0], fq);
    }
  });
  return out;
}

std::vector<torch::Tensor> grid_rows_f32(torch::Tensor x, int64_t qmax) {
  check_rows(x);
  const int64_t m = x.size(0), k = x.size(1);
  auto out = torch::empty_like(x);
  auto scales = torch::empty({m, 1}, x.options());
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  float* sp = scales.data_ptr<float>();
  const float fq = static_cast<float>(qmax);
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const float scale = std::max(abs_max(xp + i * k, k) / fq, FLT_MIN);
      sp[i] = scale;
      grid_row(xp + i * k, op + i * k, k, scale, fq);
    }
  });
  return {out, scales};
}

// out[i, j] = out[i, j] * row_scale[i] + bias[j], in place (the epilogue of a per-row
// dynamic GEMM whose accumulators were already scaled per column).
torch::Tensor scale_rows_add_bias_(torch::Tensor out, torch::Tensor row_scale,
                                   c10::optional<torch::Tensor> bias) {
  check_rows(out);
  const int64_t m = out.size(0), n = out.size(1);
  auto rs = row_scale.to(torch::kFloat32).contiguous().reshape({-1});
  TORCH_CHECK(rs.numel() == m, "row_scale must have M elements");
  torch::Tensor b;
  if (bias.has_value() && bias->defined()) {
    b = bias->to(torch::kFloat32).contiguous();
    TORCH_CHECK(b.numel() == n, "bias must have N elements");
  }
  float* op = out.data_ptr<float>();
  const float* rp = rs.data_ptr<float>();
  const float* bp = b.defined() ? b.data_ptr<float>() : nullptr;
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      float* row = op + i * n;
      const float r = rp[i];
      if (bp != nullptr) {
        for (int64_t j = 0; j < n; ++j) row[j] = row[j] * r + bp[j];
      } else {
        for (int64_t j = 0; j < n; ++j) row[j] = row[j] * r;
      }
    }
  });
  return out;
}

// Each row's largest absolute value (exact: a maximum rounds nothing), as [M].
torch::Tensor row_abs_max(torch::Tensor x) {
  check_rows(x);
  const int64_t m = x.size(0), k = x.size(1);
  auto out = torch::empty({m}, x.options());
  const float* xp = x.data_ptr<float>();
  float* op = out.data_ptr<float>();
  at::parallel_for(0, m, kGrain, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) op[i] = abs_max(xp + i * k, k);
  });
  return out;
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("quantize_u8", &quantize_u8, "rows -> u8 grid values (static or per-row scales)");
  m.def("quantize_rows_u8", &quantize_rows_u8, "rows -> (u8 grid values, per-row scales)");
  m.def("scale_rows_add_bias_", &scale_rows_add_bias_, "out * row_scale + bias, in place");
  m.def("grid_f32", &grid_f32, "rows -> float32 grid values (static or per-row scales)");
  m.def("grid_rows_f32", &grid_rows_f32, "rows -> (float32 grid values, per-row scales)");
  m.def("row_abs_max", &row_abs_max, "rows -> each row's largest absolute value");
}
