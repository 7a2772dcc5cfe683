// libtorch entry points that tch 0.24 does not expose: autocast with a chosen dtype per device
// type, the float32 matmul precision (TF32), generator state and seeded generators, part of a
// dropout mask drawn as bernoulli_ draws the whole, the
// int8 Linear weights packed for quantized::linear_dynamic, the
// multi-tensor kernels (foreach norm/mul, AMP unscale, fused AdamW) that keep an optimizer step to
// a handful of launches on CUDA, and CUDA graphs (a side stream to capture on, capture, replay).
// FT_WITH_CUDA is defined when the libtorch has CUDA and the CUDA headers were found; without it
// the graph functions report that this build cannot make graphs.
// Each function returns NULL on success or a malloc'd error message (freed by ft_free_error).
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/core/DistributionsHelper.h>
#include <ATen/Context.h>
#include <ATen/autocast_mode.h>
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/native/quantized/PackedParams.h>
#include <ATen/ops/_amp_foreach_non_finite_check_and_unscale.h>
#include <ATen/ops/_foreach_add.h>
#include <ATen/ops/_foreach_mul.h>
#include <ATen/ops/_foreach_norm.h>
#include <ATen/ops/_foreach_sub.h>
#include <ATen/ops/_fused_adamw.h>
#include <ATen/ops/clamp_max.h>
#include <ATen/ops/linalg_vector_norm.h>
#include <ATen/ops/randperm.h>
#include <ATen/ops/stack.h>
#include <c10/core/Event.h>
#include <fbgemm/Utils.h>
#include <cstdlib>
#include <cstring>
#include <vector>
#ifdef FT_WITH_CUDA
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAStream.h>
#endif

#include "guarded.h"

extern "C" {

void ft_free_error(char *e) { free(e); }

// Turns autocast on for one device type with `dtype`, remembering the previous state.
char *ft_autocast_enter(int device_type, int dtype, int *prev_enabled, int *prev_dtype) {
  GUARDED({
    auto dev = static_cast<c10::DeviceType>(device_type);
    *prev_enabled = at::autocast::is_autocast_enabled(dev);
    *prev_dtype = static_cast<int>(at::autocast::get_autocast_dtype(dev));
    at::autocast::set_autocast_enabled(dev, true);
    at::autocast::set_autocast_dtype(dev, static_cast<c10::ScalarType>(dtype));
    at::autocast::increment_nesting();
  })
}

// Undoes ft_autocast_enter; the cast-weight cache is dropped when the outermost region ends.
char *ft_autocast_exit(int device_type, int prev_enabled, int prev_dtype) {
  GUARDED({
    auto dev = static_cast<c10::DeviceType>(device_type);
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(dev, prev_enabled != 0);
    at::autocast::set_autocast_dtype(dev, static_cast<c10::ScalarType>(prev_dtype));
  })
}

// "highest" (IEEE float32) or "high" (TF32 matmuls), as torch.set_float32_matmul_precision.
char *ft_set_float32_matmul_precision(const char *precision) {
  GUARDED(at::globalContext().setFloat32MatmulPrecision(precision))
}

// torch.nn.utils.clip_grad_norm_ (foreach path): scales `grads` so their global L2 norm is at most
// max_norm; *total receives the norm before clipping (a new 0-d tensor on the grads' device).
char *ft_clip_grad_norm(tensor *grads, size_t n, double max_norm, tensor *total) {
  GUARDED({
    auto g = list(grads, n);
    auto norms = at::_foreach_norm(g, 2);
    auto t = at::linalg_vector_norm(at::stack(norms), 2);
    auto coef = at::clamp_max(max_norm / (t + 1e-6), 1.0);
    at::_foreach_mul_(g, coef);
    *total = new at::Tensor(t);
  })
}

// GradScaler.unscale_: multiplies grads by inv_scale and sets found_inf to 1 if any is NaN/inf.
char *ft_amp_unscale(tensor *grads, size_t n, tensor found_inf, tensor inv_scale) {
  GUARDED({
    auto g = list(grads, n);
    at::_amp_foreach_non_finite_check_and_unscale_(g, *found_inf, *inv_scale);
  })
}

// torch.optim.AdamW(fused=True) for one parameter group, the learning rate read from `lr` (a 0-d
// float tensor on the parameters' device, so a captured step follows the schedule). With
// found_inf (a 0-d float tensor), a step whose flag is set leaves parameters, moments and step
// counts as they were.
char *ft_fused_adamw(tensor *params, tensor *grads, tensor *exp_avgs, tensor *exp_avg_sqs,
                     tensor *steps, size_t n, tensor lr, double beta1, double beta2,
                     double weight_decay, double eps, tensor found_inf) {
  GUARDED({
    auto st = list(steps, n);
    at::_foreach_add_(st, 1);
    std::optional<at::Tensor> fi;
    if (found_inf) fi = *found_inf;
    at::_fused_adamw_(list(params, n), list(grads, n), list(exp_avgs, n), list(exp_avg_sqs, n),
                      {}, st, *lr, beta1, beta2, weight_decay, eps, false, false, std::nullopt, fi);
    if (found_inf) at::_foreach_sub_(st, std::vector<at::Tensor>(n, *found_inf));
  })
}

// torch.randperm(n, generator=torch.Generator().manual_seed(seed)): the epoch order
// transformers' Trainer draws (accelerate's SeedableRandomSampler seeds a fresh generator with
// seed + epoch).
char *ft_randperm(int64_t n, uint64_t seed, tensor *out) {
  GUARDED({
    auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
    *out = new at::Tensor(at::randperm(n, gen, at::TensorOptions().dtype(at::kLong)));
  })
}

// The default CPU generator's MT19937 state, copied out, drawn from inline and written back:
// `bernoulli_` calls the generator once per element through a virtual random64(), and skipping
// an entry that way costs a whole draw. The recurrence and tempering are at::mt19937's
// (ATen/core/MT19937RNGEngine.h: the standard MT19937), written here because its next_state is
// private and skipping k words must cost the state refills only; random64 pairs two words as
// CPUGeneratorImpl::random64 does, and the draws go through ATen's own distribution templates.
// tests/unpad.rs checks every entry and the generator's end state against bernoulli_.
struct FtMt19937 {
  static constexpr int N = at::MERSENNE_STATE_N, M = at::MERSENNE_STATE_M;
  at::mt19937_data_pod d;

  void refill() {
    auto twist = [](uint32_t u, uint32_t v) {
      return (((u & at::UMASK) | (v & at::LMASK)) >> 1) ^ ((v & 1) ? at::MATRIX_A : 0u);
    };
    uint32_t *s = d.state_.data();
    for (int j = 0; j < N - M; j++) s[j] = s[j + M] ^ twist(s[j], s[j + 1]);
    for (int j = N - M; j < N - 1; j++) s[j] = s[j + M - N] ^ twist(s[j], s[j + 1]);
    s[N - 1] = s[M - 1] ^ twist(s[N - 1], s[0]);
    d.left_ = N;
    d.next_ = 0;
  }
  uint32_t word() {
    if (--d.left_ == 0) refill();
    uint32_t y = d.state_[d.next_++];
    y ^= (y >> 11);
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= (y >> 18);
    return y;
  }
  uint64_t random64() {
    // The first word is the high half, as in CPUGeneratorImpl::random64.
    const uint64_t hi = word();
    return (hi << 32) | word();
  }
  // As `k` calls of word(), without computing their outputs.
  void skip(uint64_t k) {
    while (k > 0) {
      const uint64_t ready = static_cast<uint64_t>(d.left_ - 1);
      if (k <= ready) {
        d.left_ -= static_cast<int>(k);
        d.next_ += static_cast<uint32_t>(k);
        return;
      }
      k -= ready;
      d.next_ += static_cast<uint32_t>(ready);
      d.left_ = 1;
      word();
      k -= 1;
    }
  }
};

// Dropout's keep mask for the first lens[r] entries of each row r of `out` ([rows, width],
// float32, contiguous, CPU): exactly the values out.bernoulli_(p) gives them (ATen's CPU kernel:
// the default generator's draws in element order, one random64 each), while every other entry
// only advances the generator by the random64 bernoulli_ would have spent on it, and is set to 0.
// The generator ends where bernoulli_ of the whole would leave it. The unpadded encoder draws its
// padded-shape masks this way.
char *ft_bernoulli_prefix(tensor out, tensor lens, double p) {
  GUARDED({
    TORCH_CHECK(out->dim() == 2 && out->is_contiguous() && out->scalar_type() == at::kFloat && out->device().is_cpu(),
                "ft_bernoulli_prefix: out must be a contiguous 2-D float32 CPU tensor");
    auto l = lens->to(at::kLong).contiguous();
    const int64_t rows = out->size(0), width = out->size(1);
    TORCH_CHECK(l.dim() == 1 && l.size(0) == rows && l.device().is_cpu(), "ft_bernoulli_prefix: one CPU length per row");
    auto *gen = at::get_generator_or_default<at::CPUGeneratorImpl>(std::nullopt, at::detail::getDefaultCPUGenerator());
    std::lock_guard<std::mutex> lock(gen->mutex_);
    at::mt19937 engine = gen->engine();
    FtMt19937 mt{engine.data()};
    const at::bernoulli_distribution<double> bernoulli(p);
    float *o = out->data_ptr<float>();
    const int64_t *lp = l.data_ptr<int64_t>();
    for (int64_t r = 0; r < rows; r++) {
      const int64_t n = std::max<int64_t>(0, std::min(lp[r], width));
      float *row = o + r * width;
      for (int64_t c = 0; c < n; c++) row[c] = static_cast<float>(bernoulli(&mt));
      std::memset(row + n, 0, sizeof(float) * (width - n));
      mt.skip(2 * static_cast<uint64_t>(width - n));
    }
    engine.set_data(mt.d);
    gen->set_engine(engine);
  })
}

// A Linear's int8 weights packed for the CPU's int8 GEMM (FBGEMM or oneDNN, as the quantized
// engine picks), owned by the Rust side. Relied on, and exercised by tests/quantize.rs: the
// `quantized::linear_prepack` op of the dispatcher and LinearPackedParamsBase::apply_dynamic —
// what torch.ao's dynamic Linear runs (quantized::linear_dynamic calls apply_dynamic).
struct FtPackedLinear {
  c10::intrusive_ptr<LinearPackedParamsBase> params;
};

// `weight` a per-channel qint8 tensor [out, in], `bias` float [out] or NULL.
char *ft_linear_prepack(tensor weight, tensor bias, void **out) {
  GUARDED({
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("quantized::linear_prepack", "")
                         .typed<c10::intrusive_ptr<LinearPackedParamsBase>(at::Tensor, std::optional<at::Tensor>)>();
    std::optional<at::Tensor> b;
    if (bias) b = *bias;
    *out = new FtPackedLinear{op.call(*weight, b)};
  })
}

// x @ W^T + b with x quantized to uint8 per call (its own range), as quantized::linear_dynamic.
char *ft_linear_dynamic(void *packed, tensor x, bool reduce_range, tensor *out) {
  GUARDED({ *out = new at::Tensor(static_cast<FtPackedLinear *>(packed)->params->apply_dynamic(*x, reduce_range)); })
}

void ft_linear_packed_free(void *packed) { delete static_cast<FtPackedLinear *>(packed); }

// Whether FBGEMM's int8 GEMM accumulates with AVX-512 VNNI (32-bit sums) rather than in saturating
// 16-bit pairs (AVX2, AVX-512 without VNNI). Asked of FBGEMM itself, not of /proc/cpuinfo, so that
// FBGEMM_ENABLE_INSTRUCTIONS (which restricts its kernels) is honoured as it is by the GEMM.
bool ft_int8_gemm_has_vnni() {
  auto isa = fbgemm::fbgemmInstructionSet();
  return isa == fbgemm::inst_set_t::avx512_vnni || isa == fbgemm::inst_set_t::avx512_vnni_ymm;
}

// The default generator's state of one device (torch.get_rng_state / torch.cuda.get_rng_state).
char *ft_rng_state(int device_type, int index, tensor *out) {
  GUARDED({
    auto gen = at::globalContext().defaultGenerator(c10::Device(static_cast<c10::DeviceType>(device_type), index));
    std::lock_guard<std::mutex> lock(gen.mutex());
    *out = new at::Tensor(gen.get_state());
  })
}

// Restores a state read by ft_rng_state.
char *ft_set_rng_state(int device_type, int index, tensor state) {
  GUARDED({
    auto gen = at::globalContext().defaultGenerator(c10::Device(static_cast<c10::DeviceType>(device_type), index));
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(*state);
  })
}

// A stream from the device's pool that graph steps run on (captures must not use the default
// stream), with the stream and device that were current before `ft_side_stream_enter`.
struct FtSideStream {
  c10::Stream side;
  c10::Stream prev;
  c10::DeviceIndex prev_device;
};

#ifdef FT_WITH_CUDA
// Makes `to` wait for the work queued so far on `from` (an event; the host does not wait).
static void stream_wait(const c10::Stream &from, const c10::Stream &to) {
  c10::Event ev(c10::DeviceType::CUDA);
  ev.record(from);
  ev.block(to);
}
#define NEEDS_CUDA(...) GUARDED(__VA_ARGS__)
#else
#define NEEDS_CUDA(...) \
  return strdup("this build's libtorch has no CUDA (or its CUDA headers were missing): no CUDA graphs");
#endif

char *ft_side_stream_new(int device_index, FtSideStream **out) {
  NEEDS_CUDA({
    auto s = c10::cuda::getStreamFromPool(false, static_cast<c10::DeviceIndex>(device_index)).unwrap();
    *out = new FtSideStream{s, s, s.device_index()};
  })
}

void ft_side_stream_free(FtSideStream *s) { delete s; }

// Makes the side stream (and its device: CUDAGraph captures the current device's current stream)
// current after it has waited for the current stream's queued work.
char *ft_side_stream_enter(FtSideStream *s) {
  NEEDS_CUDA({
    s->prev_device = c10::cuda::current_device();
    c10::cuda::set_device(s->side.device_index());
    auto cur = c10::cuda::getCurrentCUDAStream(s->side.device_index());
    stream_wait(cur.unwrap(), s->side);
    s->prev = cur.unwrap();
    c10::cuda::setCurrentCUDAStream(c10::cuda::CUDAStream(c10::cuda::CUDAStream::UNCHECKED, s->side));
  })
}

// Puts back the stream that was current at ft_side_stream_enter, which then waits for the side
// stream's work.
char *ft_side_stream_exit(FtSideStream *s) {
  NEEDS_CUDA({
    c10::cuda::setCurrentCUDAStream(c10::cuda::CUDAStream(c10::cuda::CUDAStream::UNCHECKED, s->prev));
    stream_wait(s->side, s->prev);
    c10::cuda::set_device(s->prev_device);
  })
}

#ifdef FT_WITH_CUDA
typedef at::cuda::CUDAGraph FtGraph;
#else
struct FtGraph {};
#endif

char *ft_graph_new(FtGraph **out) { NEEDS_CUDA(*out = new FtGraph()) }

void ft_graph_free(FtGraph *g) { delete g; }

// Starts capturing the current (non-default) stream's work into `g`. Its memory comes from
// `share`'s private pool when given (graphs that never run at the same time), else a new one.
// The default CUDA generator is registered by CUDAGraph itself, so dropout draws fresh masks on
// every replay.
char *ft_graph_capture_begin(FtGraph *g, FtGraph *share) {
  NEEDS_CUDA({
    if (share)
      g->capture_begin(share->pool());
    else
      g->capture_begin();
  })
}

char *ft_graph_capture_end(FtGraph *g) { NEEDS_CUDA(g->capture_end()) }

// Launches the captured work on the current stream.
char *ft_graph_replay(FtGraph *g) { NEEDS_CUDA(g->replay()) }
}
