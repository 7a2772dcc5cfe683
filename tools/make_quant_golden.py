"""Golden fixture for tests/quantize.rs: PyTorch's dynamic int8 Linear (per-channel weights,
torch.ao's per_channel_dynamic_qconfig) on a small layer, with the int8 values and scales its
observer chose and its outputs with reduce_range on (what torch.ao's dynamic Linear runs) and off.

    $(bash tools/setup-reference.sh) tools/make_quant_golden.py   # writes tests/fixtures/quant/linear.safetensors
"""
import os

import torch
from safetensors.torch import save_file

torch.manual_seed(0)
out_features, in_features = 12, 40
layer = torch.nn.Linear(in_features, out_features)
with torch.no_grad():
    layer.weight.mul_(torch.linspace(0.2, 3.0, out_features).unsqueeze(1))  # rows of different ranges
    layer.weight[3].zero_()  # an all-zero row: the scale falls back to float32's epsilon
x = torch.randn(5, in_features) * 2.0 + 0.3
model = torch.nn.Sequential(layer)
q = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear: torch.ao.quantization.per_channel_dynamic_qconfig}, dtype=torch.qint8)
packed = q[0]._packed_params._packed_params
w, b = torch.ops.quantized.linear_unpack(packed)
tensors = {
    "weight": layer.weight.detach().contiguous(),
    "bias": layer.bias.detach().contiguous(),
    "x": x.contiguous(),
    "int8": w.int_repr().contiguous(),
    "scale": w.q_per_channel_scales().to(torch.float32).contiguous(),
    "y_reduce_range": torch.ops.quantized.linear_dynamic(x, packed, reduce_range=True).contiguous(),
    "y_full_range": torch.ops.quantized.linear_dynamic(x, packed, reduce_range=False).contiguous(),
    "y_float": layer(x).detach().contiguous(),
}
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "quant", "linear.safetensors")
save_file(tensors, path, metadata={"torch": torch.__version__, "engine": torch.backends.quantized.engine})
print(path, {k: tuple(v.shape) for k, v in tensors.items()}, torch.backends.quantized.engine)
