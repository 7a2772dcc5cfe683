//! Safe wrappers over `csrc/torch_ext.cpp`: the libtorch calls tch 0.24 does not expose. Autocast
//! with an explicit dtype (tch's `autocast` only toggles CUDA fp16), the float32 matmul precision
//! (TF32), generator state and seeded permutations, part of a dropout mask drawn as the whole
//! would be, the multi-tensor kernels behind clipping,
//! loss-scale unscaling and fused AdamW, CUDA graphs, and int8 Linear weights packed for
//! `quantized::linear_dynamic`.
use crate::error::{Error, Result};
use std::ffi::{c_char, c_int, c_void, CStr, CString};
use tch::{Device, Kind, Tensor};

// An `at::Tensor*`, as tch hands it out.
pub(crate) type Raw = *mut c_void;

extern "C" {
    fn ft_free_error(e: *mut c_char);
    fn ft_int8_gemm_has_vnni() -> bool;
    fn ft_autocast_enter(device_type: c_int, dtype: c_int, prev_enabled: *mut c_int, prev_dtype: *mut c_int) -> *mut c_char;
    fn ft_autocast_exit(device_type: c_int, prev_enabled: c_int, prev_dtype: c_int) -> *mut c_char;
    fn ft_set_float32_matmul_precision(precision: *const c_char) -> *mut c_char;
    fn ft_clip_grad_norm(grads: *const Raw, n: usize, max_norm: f64, total: *mut Raw) -> *mut c_char;
    fn ft_randperm(n: i64, seed: u64, out: *mut Raw) -> *mut c_char;
    fn ft_bernoulli_prefix(out: Raw, lens: Raw, p: f64) -> *mut c_char;
    fn ft_rng_state(device_type: c_int, index: c_int, out: *mut Raw) -> *mut c_char;
    fn ft_set_rng_state(device_type: c_int, index: c_int, state: Raw) -> *mut c_char;
    fn ft_amp_unscale(grads: *const Raw, n: usize, found_inf: Raw, inv_scale: Raw) -> *mut c_char;
    fn ft_fused_adamw(
        params: *const Raw,
        grads: *const Raw,
        exp_avgs: *const Raw,
        exp_avg_sqs: *const Raw,
        steps: *const Raw,
        n: usize,
        lr: Raw,
        beta1: f64,
        beta2: f64,
        weight_decay: f64,
        eps: f64,
        found_inf: Raw,
    ) -> *mut c_char;
    fn ft_side_stream_new(device_index: c_int, out: *mut *mut c_void) -> *mut c_char;
    fn ft_side_stream_free(s: *mut c_void);
    fn ft_side_stream_enter(s: *mut c_void) -> *mut c_char;
    fn ft_side_stream_exit(s: *mut c_void) -> *mut c_char;
    fn ft_graph_new(out: *mut *mut c_void) -> *mut c_char;
    fn ft_graph_free(g: *mut c_void);
    fn ft_graph_capture_begin(g: *mut c_void, share: *mut c_void) -> *mut c_char;
    fn ft_graph_capture_end(g: *mut c_void) -> *mut c_char;
    fn ft_graph_replay(g: *mut c_void) -> *mut c_char;
    fn ft_linear_prepack(weight: Raw, bias: Raw, out: *mut *mut c_void) -> *mut c_char;
    fn ft_linear_dynamic(packed: *mut c_void, x: Raw, reduce_range: bool, out: *mut Raw) -> *mut c_char;
    fn ft_linear_packed_free(packed: *mut c_void);
}

pub(crate) fn check(e: *mut c_char) -> Result<()> {
    if e.is_null() {
        return Ok(());
    }
    // SAFETY: a non-null return is a NUL-terminated string from strdup, owned by us.
    let msg = unsafe { CStr::from_ptr(e) }.to_string_lossy().into_owned();
    unsafe { ft_free_error(e) };
    Err(Error::Torch(tch::TchError::Torch(msg)))
}

pub(crate) fn raw(ts: &[&Tensor]) -> Vec<Raw> {
    ts.iter().map(|t| t.as_ptr() as Raw).collect()
}

/// c10's ScalarType codes for the dtypes autocast takes.
fn scalar_type(kind: Kind) -> Result<c_int> {
    match kind {
        Kind::Half => Ok(5),
        Kind::BFloat16 => Ok(15),
        _ => Err(Error::Invalid(format!("autocast dtype {kind:?}; expected Half or BFloat16"))),
    }
}

/// c10's DeviceType codes.
fn device_type(device: Device) -> c_int {
    match device {
        Device::Cuda(_) => 1,
        _ => 0,
    }
}

fn device_index(device: Device) -> c_int {
    match device {
        Device::Cuda(i) => i as c_int,
        _ => -1,
    }
}

pub(crate) fn take(out: Raw) -> Tensor {
    // SAFETY: on success the C side hands over a heap tensor that nothing else owns.
    unsafe { Tensor::from_ptr(out as *mut _) }
}

/// `torch.randperm(n, generator=torch.Generator().manual_seed(seed))` on the CPU.
pub fn randperm(n: usize, seed: u64) -> Result<Vec<usize>> {
    let mut out: Raw = std::ptr::null_mut();
    check(unsafe { ft_randperm(n as i64, seed, &mut out) })?;
    let perm: Vec<i64> = Vec::try_from(take(out))?;
    Ok(perm.into_iter().map(|i| i as usize).collect())
}

/// `[rows, width]` float32 on the CPU: the first `lens[r]` entries of row `r` as
/// `bernoulli_(p)` of the whole tensor draws them from the default CPU generator, the others 0;
/// the generator advances as that `bernoulli_` would advance it.
pub fn bernoulli_prefix(rows: i64, width: i64, lens: &[i64], p: f64) -> Result<Tensor> {
    let out = Tensor::empty([rows, width], (Kind::Float, Device::Cpu));
    let lens = Tensor::from_slice(lens);
    check(unsafe { ft_bernoulli_prefix(out.as_ptr() as Raw, lens.as_ptr() as Raw, p) })?;
    Ok(out)
}

/// The state of `device`'s default generator (a uint8 tensor on the CPU).
pub fn rng_state(device: Device) -> Result<Tensor> {
    let mut out: Raw = std::ptr::null_mut();
    check(unsafe { ft_rng_state(device_type(device), device_index(device), &mut out) })?;
    Ok(take(out))
}

/// Puts back a state read by [`rng_state`].
pub fn set_rng_state(device: Device, state: &Tensor) -> Result<()> {
    check(unsafe { ft_set_rng_state(device_type(device), device_index(device), state.as_ptr() as Raw) })
}

/// Autocast on `device`'s type with `dtype` while alive; the previous state comes back on drop.
pub struct Autocast {
    device_type: c_int,
    prev_enabled: c_int,
    prev_dtype: c_int,
}

impl Autocast {
    pub fn new(device: Device, dtype: Kind) -> Result<Self> {
        let (mut prev_enabled, mut prev_dtype) = (0, 0);
        let device_type = device_type(device);
        check(unsafe { ft_autocast_enter(device_type, scalar_type(dtype)?, &mut prev_enabled, &mut prev_dtype) })?;
        Ok(Autocast { device_type, prev_enabled, prev_dtype })
    }
}

impl Drop for Autocast {
    fn drop(&mut self) {
        if let Err(e) = check(unsafe { ft_autocast_exit(self.device_type, self.prev_enabled, self.prev_dtype) }) {
            tracing::error!("leaving autocast: {e}");
        }
    }
}

/// Runs `f` under autocast with `dtype`, or plainly when `dtype` is None.
pub fn maybe_autocast<T>(device: Device, dtype: Option<Kind>, f: impl FnOnce() -> Result<T>) -> Result<T> {
    let _guard = dtype.map(|k| Autocast::new(device, k)).transpose()?;
    f()
}

/// `torch.set_float32_matmul_precision`: "highest" (IEEE float32) or "high" (TF32 on Ampere+).
pub fn set_float32_matmul_precision(precision: &str) -> Result<()> {
    let c = CString::new(precision).map_err(|_| Error::Invalid(format!("precision `{precision}`")))?;
    check(unsafe { ft_set_float32_matmul_precision(c.as_ptr()) })
}

/// `clip_grad_norm_` over `grads` (foreach kernels); returns the norm before clipping as a 0-d
/// tensor on the grads' device, without a host sync.
pub fn clip_grad_norm(grads: &[&Tensor], max_norm: f64) -> Result<Tensor> {
    let r = raw(grads);
    let mut total: Raw = std::ptr::null_mut();
    check(unsafe { ft_clip_grad_norm(r.as_ptr(), r.len(), max_norm, &mut total) })?;
    Ok(take(total))
}

/// GradScaler's unscale: grads *= inv_scale; found_inf becomes 1 if any grad is NaN/inf.
pub fn amp_unscale(grads: &[&Tensor], found_inf: &Tensor, inv_scale: &Tensor) -> Result<()> {
    let r = raw(grads);
    check(unsafe { ft_amp_unscale(r.as_ptr(), r.len(), found_inf.as_ptr() as Raw, inv_scale.as_ptr() as Raw) })
}

/// One parameter group's tensors for [`fused_adamw`].
pub struct AdamWGroup<'a> {
    pub params: Vec<&'a Tensor>,
    pub grads: Vec<&'a Tensor>,
    pub exp_avgs: Vec<&'a Tensor>,
    pub exp_avg_sqs: Vec<&'a Tensor>,
    /// One float 0-d tensor per parameter, incremented on the device.
    pub steps: Vec<&'a Tensor>,
}

/// Hyper-parameters of one fused AdamW step.
#[derive(Clone, Copy)]
pub struct AdamWStep<'a> {
    /// A 0-d float tensor on the parameters' device, read by the kernel.
    pub lr: &'a Tensor,
    pub beta1: f64,
    pub beta2: f64,
    pub weight_decay: f64,
    pub eps: f64,
}

/// `torch.optim.AdamW(fused=True)`'s step for one group; with `found_inf` set, nothing changes.
pub fn fused_adamw(g: &AdamWGroup, h: AdamWStep<'_>, found_inf: Option<&Tensor>) -> Result<()> {
    let n = g.params.len();
    if [g.grads.len(), g.exp_avgs.len(), g.exp_avg_sqs.len(), g.steps.len()].iter().any(|&l| l != n) {
        return Err(Error::Invalid("fused AdamW: parameter group lists differ in length".into()));
    }
    if n == 0 {
        return Ok(());
    }
    let (p, gr, m, v, s) = (raw(&g.params), raw(&g.grads), raw(&g.exp_avgs), raw(&g.exp_avg_sqs), raw(&g.steps));
    let fi = found_inf.map_or(std::ptr::null_mut(), |t| t.as_ptr() as Raw);
    check(unsafe {
        ft_fused_adamw(p.as_ptr(), gr.as_ptr(), m.as_ptr(), v.as_ptr(), s.as_ptr(), n, h.lr.as_ptr() as Raw, h.beta1, h.beta2, h.weight_decay, h.eps, fi)
    })
}

/// A stream of a CUDA device's pool for graph steps (capture cannot use the default stream).
pub struct SideStream(*mut c_void);

impl SideStream {
    pub fn new(device: Device) -> Result<Self> {
        let Device::Cuda(index) = device else {
            return Err(Error::Invalid(format!("a side stream needs a CUDA device, not {device:?}")));
        };
        let mut out = std::ptr::null_mut();
        check(unsafe { ft_side_stream_new(index as c_int, &mut out) })?;
        Ok(SideStream(out))
    }

    /// Runs `f` with this stream current. It first waits for the work queued on the current
    /// stream, and that stream waits for `f`'s work afterwards, so callers see one ordered queue
    /// and the host never waits.
    pub fn run<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        check(unsafe { ft_side_stream_enter(self.0) })?;
        let out = f();
        let exit = check(unsafe { ft_side_stream_exit(self.0) });
        let out = out?;
        exit.map(|_| out)
    }
}

impl Drop for SideStream {
    fn drop(&mut self) {
        unsafe { ft_side_stream_free(self.0) }
    }
}

/// A captured CUDA graph (`torch.cuda.CUDAGraph`).
pub struct CudaGraph(*mut c_void);

impl CudaGraph {
    /// Records the device work `f` queues on the current stream (which must be a [`SideStream`])
    /// without running it. Memory comes from `share`'s private pool when given: graphs that share
    /// a pool must never run at the same time, and a graph's outputs must be read before another
    /// graph of the pool replays.
    pub fn capture<T>(share: Option<&CudaGraph>, f: impl FnOnce() -> Result<T>) -> Result<(CudaGraph, T)> {
        let mut g = std::ptr::null_mut();
        check(unsafe { ft_graph_new(&mut g) })?;
        let graph = CudaGraph(g);
        check(unsafe { ft_graph_capture_begin(graph.0, share.map_or(std::ptr::null_mut(), |s| s.0)) })?;
        let out = f();
        // Capture must end even when `f` failed, or the stream stays in capture mode.
        let end = check(unsafe { ft_graph_capture_end(graph.0) });
        let out = out?;
        end.map(|_| (graph, out))
    }

    /// Queues the captured work on the current stream.
    pub fn replay(&self) -> Result<()> {
        check(unsafe { ft_graph_replay(self.0) })
    }
}

impl Drop for CudaGraph {
    fn drop(&mut self) {
        unsafe { ft_graph_free(self.0) }
    }
}

/// Whether FBGEMM's int8 GEMM runs its AVX-512 VNNI kernels (32-bit sums of products) on this
/// CPU under this process's `FBGEMM_ENABLE_INSTRUCTIONS`; otherwise it adds pairs of products in
/// saturating 16-bit lanes.
pub fn int8_gemm_has_vnni() -> bool {
    // SAFETY: a pure query of FBGEMM's cached CPU detection.
    unsafe { ft_int8_gemm_has_vnni() }
}

/// A Linear layer's int8 weights packed for the CPU's int8 GEMM (`quantized::linear_prepack`).
pub struct PackedLinear(*mut c_void);

// SAFETY: the packed parameters are immutable once made; apply_dynamic only reads them (PyTorch
// calls one module from many threads the same way).
unsafe impl Send for PackedLinear {}
unsafe impl Sync for PackedLinear {}

impl std::fmt::Debug for PackedLinear {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PackedLinear")
    }
}

impl PackedLinear {
    /// Packs `weight`, a per-channel `QInt8` tensor [out, in], with an optional float bias [out].
    pub fn new(weight: &Tensor, bias: Option<&Tensor>) -> Result<Self> {
        let mut out = std::ptr::null_mut();
        let b = bias.map_or(std::ptr::null_mut(), |b| b.as_ptr() as Raw);
        check(unsafe { ft_linear_prepack(weight.as_ptr() as Raw, b, &mut out) })?;
        Ok(PackedLinear(out))
    }

    /// `x @ W^T + b` (float, any leading dimensions), `x` quantized to uint8 over its own range
    /// per call; `reduce_range` uses 7 bits, for CPUs whose int8 GEMM could overflow otherwise.
    pub fn forward(&self, x: &Tensor, reduce_range: bool) -> Result<Tensor> {
        let mut out = std::ptr::null_mut();
        check(unsafe { ft_linear_dynamic(self.0, x.as_ptr() as Raw, reduce_range, &mut out) })?;
        Ok(take(out))
    }
}

impl Drop for PackedLinear {
    fn drop(&mut self) {
        unsafe { ft_linear_packed_free(self.0) }
    }
}
