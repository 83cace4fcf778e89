#include "depthwise.h"

#include <algorithm>
#include <string>
#include <thread>
#include <vector>

#include "errors.h"

namespace hwnas {

namespace {

// Channels per vector block: one AVX-512 register, two AVX2 ones.
constexpr int64_t kLanes = 16;

// Any kernel size and any channels: the plain sum (used where the vector path below does not apply).
void image_any(const float* image, const float* grad_out, float* acc, const DepthwiseShape& s, int64_t c0,
               int64_t c1);

#if defined(__GNUC__)  // GCC and Clang: vector extensions
#define HWNAS_VECTOR_PATH 1
// Lanes values only pass between inlined internal functions, so GCC's note that returning one changes the
// ABI without AVX-512 does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"

// kLanes floats as one value: the compiler lowers it to whatever vector registers the target has.
typedef float Lanes __attribute__((vector_size(kLanes * sizeof(float))));
typedef float UnalignedLanes __attribute__((vector_size(kLanes * sizeof(float)), aligned(4), may_alias));

__attribute__((always_inline)) inline Lanes load(const float* p) { return *reinterpret_cast<const UnalignedLanes*>(p); }
__attribute__((always_inline)) inline void store(float* p, Lanes v) { *reinterpret_cast<UnalignedLanes*>(p) = v; }

// Adds `g` times input pixels (left, ..., left + K - 1) of one row to the K sums, skipping the pixels
// outside the image: the slow path for output pixels whose window crosses the left or right border.
__attribute__((always_inline)) inline void border_pixel(const float* row, int64_t left, int64_t width,
                                                        int64_t channels, int64_t kernel, Lanes g, float* acc_row,
                                                        int64_t acc_stride) {
  for (int64_t j = std::max<int64_t>(0, -left); j < std::min(kernel, width - left); ++j)
    store(acc_row + j * acc_stride, load(acc_row + j * acc_stride) + load(row + (left + j) * channels) * g);
}

// The sums of one image for the channel block [c0, c0 + kLanes), added to `acc` ([K, K, C]). For each
// kernel row the K sums stay in registers while the output pixels whose window lies inside the image
// sweep past: one load of the input per multiply-add; border pixels go through `border_pixel`.
template <int K>
__attribute__((always_inline)) inline void image_block(const float* image, const float* grad_out, float* acc,
                                                       const DepthwiseShape& s, int64_t c0) {
  const int64_t C = s.channels, S = s.stride, P = s.padding;
  // Output columns whose window [ow*S - P, ow*S - P + K) lies inside [0, W).
  const int64_t first = std::min(s.out_width, (P + S - 1) / S);
  const int64_t last = std::max(first, std::min(s.out_width, (s.width - K + P) / S + 1));
  for (int i = 0; i < K; ++i) {
    float* acc_row = acc + i * K * C + c0;
    Lanes sums[K];
#pragma GCC unroll 8
    for (int j = 0; j < K; ++j) sums[j] = Lanes{};
    for (int64_t oh = 0; oh < s.out_height; ++oh) {
      const int64_t ih = oh * S - P + i;
      if (ih < 0 || ih >= s.height) continue;
      const float* row = image + ih * s.width * C + c0;
      const float* grow = grad_out + oh * s.out_width * C + c0;
      for (int64_t ow = 0; ow < first; ++ow) border_pixel(row, ow * S - P, s.width, C, K, load(grow + ow * C), acc_row, C);
      for (int64_t ow = first; ow < last; ++ow) {
        const float* x = row + (ow * S - P) * C;
        const Lanes g = load(grow + ow * C);
#pragma GCC unroll 8
        for (int j = 0; j < K; ++j) sums[j] += load(x + j * C) * g;
      }
      for (int64_t ow = last; ow < s.out_width; ++ow)
        border_pixel(row, ow * S - P, s.width, C, K, load(grow + ow * C), acc_row, C);
    }
#pragma GCC unroll 8
    for (int j = 0; j < K; ++j) store(acc_row + j * C, load(acc_row + j * C) + sums[j]);
  }
}

// On x86-64 Linux, built for several instruction sets and picked at load time (an ifunc): portable builds
// still use AVX2/AVX-512 where the CPU has them.
#if defined(__x86_64__) && defined(__linux__)
#define HWNAS_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define HWNAS_CLONES
#endif
HWNAS_CLONES void image_block_3(const float* x, const float* g, float* a, const DepthwiseShape& s, int64_t c0) {
  image_block<3>(x, g, a, s, c0);
}
HWNAS_CLONES void image_block_5(const float* x, const float* g, float* a, const DepthwiseShape& s, int64_t c0) {
  image_block<5>(x, g, a, s, c0);
}
HWNAS_CLONES void image_block_7(const float* x, const float* g, float* a, const DepthwiseShape& s, int64_t c0) {
  image_block<7>(x, g, a, s, c0);
}
#undef HWNAS_CLONES
#else
#define HWNAS_VECTOR_PATH 0
#endif  // defined(__GNUC__)

void image_any(const float* image, const float* grad_out, float* acc, const DepthwiseShape& s, int64_t c0,
               int64_t c1) {
  const int64_t K = s.kernel, C = s.channels;
  for (int64_t oh = 0; oh < s.out_height; ++oh)
    for (int64_t ow = 0; ow < s.out_width; ++ow) {
      const float* g = grad_out + (oh * s.out_width + ow) * C;
      for (int64_t i = 0; i < K; ++i) {
        const int64_t ih = oh * s.stride - s.padding + i;
        if (ih < 0 || ih >= s.height) continue;
        for (int64_t j = 0; j < K; ++j) {
          const int64_t iw = ow * s.stride - s.padding + j;
          if (iw < 0 || iw >= s.width) continue;
          const float* x = image + (ih * s.width + iw) * C;
          float* a = acc + (i * K + j) * C;
          for (int64_t c = c0; c < c1; ++c) a[c] += x[c] * g[c];
        }
      }
    }
}

// Adds the gradient of channels [first, last) over the whole batch to `acc` ([K, K, C], zeroed).
void channel_range(const float* input, const float* grad_out, float* acc, const DepthwiseShape& s, int64_t first,
                   int64_t last) {
  const bool vector = HWNAS_VECTOR_PATH && (s.kernel == 3 || s.kernel == 5 || s.kernel == 7);
  const int64_t blocked = vector ? first + (last - first) / kLanes * kLanes : first;
  const int64_t image_size = s.height * s.width * s.channels, out_size = s.out_height * s.out_width * s.channels;
  for (int64_t n = 0; n < s.batch; ++n) {
    const float* x = input + n * image_size;
    const float* g = grad_out + n * out_size;
#if HWNAS_VECTOR_PATH
    for (int64_t c0 = first; c0 < blocked; c0 += kLanes) {
      switch (s.kernel) {
        case 3: image_block_3(x, g, acc, s, c0); break;
        case 5: image_block_5(x, g, acc, s, c0); break;
        default: image_block_7(x, g, acc, s, c0);
      }
    }
#endif
    if (blocked < last) image_any(x, g, acc, s, blocked, last);
  }
}

}  // namespace

void check_depthwise_shape(const DepthwiseShape& s) {
  const auto fail = [](const std::string& what) { throw InvalidArgument("depthwise_weight_grad: " + what); };
  if (s.batch < 1 || s.height < 1 || s.width < 1 || s.channels < 1) {
    fail("input [N, H, W, C] = [" + std::to_string(s.batch) + ", " + std::to_string(s.height) + ", " +
         std::to_string(s.width) + ", " + std::to_string(s.channels) + "] must have every size >= 1");
  }
  if (s.kernel < 1 || s.stride < 1 || s.padding < 0) {
    fail("kernel=" + std::to_string(s.kernel) + ", stride=" + std::to_string(s.stride) + ", padding=" +
         std::to_string(s.padding) + " must be >= 1, >= 1 and >= 0");
  }
  const int64_t ho = (s.height + 2 * s.padding - s.kernel) / s.stride + 1;
  const int64_t wo = (s.width + 2 * s.padding - s.kernel) / s.stride + 1;
  if (s.height + 2 * s.padding < s.kernel || s.width + 2 * s.padding < s.kernel || s.out_height != ho ||
      s.out_width != wo) {
    fail("output " + std::to_string(s.out_height) + "x" + std::to_string(s.out_width) + " does not match the " +
         std::to_string(ho) + "x" + std::to_string(wo) + " this input, kernel, stride and padding give");
  }
}

void depthwise_weight_grad(const float* input, const float* grad_out, float* grad, const DepthwiseShape& shape,
                           int threads) {
  check_depthwise_shape(shape);
  if (threads < 1) throw InvalidArgument("depthwise_weight_grad: threads=" + std::to_string(threads) + " must be >= 1");
  const int64_t K = shape.kernel, C = shape.channels;
  std::vector<float> acc(static_cast<size_t>(K * K * C), 0.0f);  // [K, K, C]: channels innermost
  const int64_t blocks = (C + kLanes - 1) / kLanes;
  const int64_t workers = std::min<int64_t>(threads, blocks);
  if (workers <= 1) {
    channel_range(input, grad_out, acc.data(), shape, 0, C);
  } else {
    std::vector<std::thread> pool;
    for (int64_t w = 0; w < workers; ++w) {  // whole blocks per worker: the sums do not depend on `threads`
      const int64_t first = (blocks * w / workers) * kLanes;
      const int64_t last = std::min(C, (blocks * (w + 1) / workers) * kLanes);
      pool.emplace_back(channel_range, input, grad_out, acc.data(), std::cref(shape), first, last);
    }
    for (auto& t : pool) t.join();
  }
  for (int64_t c = 0; c < C; ++c)
    for (int64_t t = 0; t < K * K; ++t) grad[c * K * K + t] = acc[t * C + c];
}

}  // namespace hwnas
