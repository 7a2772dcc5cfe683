// What csrc/torch_ext.cpp and csrc/dist.cpp share: the tensor handle tch passes (a pointer to an
// at::Tensor), the error convention of their extern "C" functions (NULL on success, else a
// malloc'd message the Rust side frees), and the list of tensors from an array of handles.
#pragma once
#include <ATen/ATen.h>
#include <cstring>
#include <vector>

typedef at::Tensor *tensor;

#define GUARDED(...)                                                           \
  try {                                                                        \
    __VA_ARGS__;                                                               \
    return nullptr;                                                            \
  } catch (const std::exception &e) {                                          \
    return strdup(e.what());                                                   \
  } catch (...) {                                                              \
    /* Anything else would unwind through extern "C" and abort the process. */ \
    return strdup("unknown C++ exception");                                    \
  }

static inline std::vector<at::Tensor> list(tensor *ts, size_t n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (size_t i = 0; i < n; i++) v.push_back(*ts[i]);
  return v;
}
