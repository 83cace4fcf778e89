// The weight gradient of a depthwise 2-D convolution on channels-last (NHWC) float32 tensors.
//
// Training an elastic supernet on CPU spends most of its backward pass here: oneDNN computes this
// gradient for 5x5 and 7x7 depthwise kernels ~10x slower than the forward pass of the same
// convolution. The sum below runs over channels innermost, which NHWC keeps contiguous, so it
// vectorises; channel blocks are independent, which makes threading deterministic.
#pragma once

#include <cstdint>

namespace hwnas {

struct DepthwiseShape {
  int64_t batch, height, width, channels;  // input [N, H, W, C]
  int64_t kernel, stride, padding;         // square kernel, same stride and zero padding on both axes
  int64_t out_height, out_width;           // output [N, Ho, Wo, C]
};

// Checks the shape is consistent (positive sizes; Ho, Wo what the convolution gives); InvalidArgument
// naming the value otherwise.
void check_depthwise_shape(const DepthwiseShape& shape);

// grad[c][i][j] = sum over n, oh, ow of input[n][oh*s + i - p][ow*s + j - p][c] * grad_out[n][oh][ow][c]
// (terms outside the input are zero). `grad` is [C, K, K], overwritten. `threads` >= 1 split the channels.
void depthwise_weight_grad(const float* input, const float* grad_out, float* grad, const DepthwiseShape& shape,
                           int threads);

}  // namespace hwnas
