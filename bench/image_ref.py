#!/usr/bin/env python3
"""PyTorch reference for `finetune image`: EfficientNet-Lite0 (tools/efficientnet_lite_ref.py, the
packaged ImageNet weights) on a PaddleHub-style list dataset, with the recipe finetune's README
gives, so the two can be compared side by side.

  full fine-tune: RandomResizedCrop(224) + flip, (x-0.5)/0.5, AdamW lr 1e-3 wd 0.01 (not on biases),
                  batch 32, cosine to 0 over --epochs (per step, no warmup), BN momentum 0.1,
                  dropout 0.2, drop-connect 0.2, no gradient clipping
  --freeze-backbone: pooled 1280-d features of Resize(256)+CenterCrop(224) images cached once, a
                  linear head trained with AdamW lr 1e-3 wd 0.01, batch 32, constant lr, --epochs

Writes <output-dir>/eval_results.json (eval_accuracy, per-class accuracy) and prints wall time and
training images/s.

    PY=$(bash tools/setup-reference.sh)
    $PY bench/image_ref.py --pth <efficientnet-lite0 .pth> --data-dir ../shared/data/flowers/flower_photos \
        --output-dir /tmp/ref-img [--freeze-backbone --epochs 100]
"""
import argparse, json, math, os, sys, time
for _v, _x in (("MKL_CBWR", "AUTO"), ("MKL_DYNAMIC", "FALSE")):  # the math mode finetune runs in (run_info::pin_reproducible_math)
    os.environ.setdefault(_v, _x)
import torch
import torch.nn.functional as F
from PIL import Image
import torchvision.transforms as T

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import efficientnet_lite_ref  # noqa: E402


def read_list(root, path):
    out = []
    for line in open(path):
        if line.strip():
            p, l = line.rsplit(maxsplit=1)
            out.append((os.path.join(root, p), int(l)))
    return out


class Images(torch.utils.data.Dataset):
    def __init__(self, items, tf):
        self.items, self.tf = items, tf

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        p, l = self.items[i]
        return self.tf(Image.open(p).convert("RGB")), l


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pth", required=True)
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--train-list")
    ap.add_argument("--val-list")
    ap.add_argument("--label-list")
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--freeze-backbone", action="store_true")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--learning-rate", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--num-workers", type=int, default=0, help="DataLoader decoding processes")
    a = ap.parse_args()
    dev = torch.device(a.device)
    parent = os.path.dirname(os.path.abspath(a.data_dir))
    lists = {k: v or os.path.join(parent, f) for k, v, f in
             [("train", a.train_list, "train_list.txt"), ("val", a.val_list, "validate_list.txt"), ("labels", a.label_list, "label_list.txt")]}
    labels = [l.strip() for l in open(lists["labels"]) if l.strip()]
    train, val = read_list(a.data_dir, lists["train"]), read_list(a.data_dir, lists["val"])
    torch.manual_seed(a.seed)
    norm = T.Normalize([0.5] * 3, [0.5] * 3)
    eval_tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), norm])
    train_tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor(), norm])
    model = efficientnet_lite_ref.load_pretrained(a.pth, num_classes=len(labels))
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = 0.1
    model.to(dev)
    loader = lambda items, tf, shuffle: ((x.to(dev), y.to(dev)) for x, y in torch.utils.data.DataLoader(
        Images(items, tf), batch_size=a.batch_size, shuffle=shuffle, num_workers=a.num_workers))

    def features(items):
        model.eval()
        with torch.no_grad():
            return torch.cat([model.features(x) for x, _ in loader(items, eval_tf, False)]), torch.tensor([l for _, l in items], device=dev)

    t0 = time.perf_counter()
    if a.freeze_backbone:
        (xtr, ytr), (xva, yva) = features(train), features(val)
        head = model._fc
        params = [{"params": [head.weight], "weight_decay": a.weight_decay}, {"params": [head.bias], "weight_decay": 0.0}]
        opt = torch.optim.AdamW(params, lr=a.learning_rate)
        for _ in range(a.epochs):
            perm = torch.randperm(len(ytr)).to(dev)
            for i in range(0, len(perm), a.batch_size):
                idx = perm[i:i + a.batch_size]
                opt.zero_grad()
                F.cross_entropy(head(xtr[idx]), ytr[idx]).backward()
                opt.step()
        with torch.no_grad():
            logits = head(xva)
        seen = len(ytr) * a.epochs
    else:
        decay = [p for n, p in model.named_parameters() if not n.endswith(".bias")]
        no_decay = [p for n, p in model.named_parameters() if n.endswith(".bias")]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=a.learning_rate)
        steps_per_epoch = math.ceil(len(train) / a.batch_size)
        total = steps_per_epoch * a.epochs
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + math.cos(math.pi * s / total)))
        for epoch in range(a.epochs):
            model.train()
            for x, y in loader(train, train_tf, True):
                opt.zero_grad()
                F.cross_entropy(model(x), y).backward()
                opt.step()
                sched.step()
            print(f"epoch {epoch + 1}: {time.perf_counter() - t0:.0f} s", flush=True)
        model.eval()
        with torch.no_grad():
            logits = torch.cat([model(x) for x, _ in loader(val, eval_tf, False)])
        yva = torch.tensor([l for _, l in val], device=dev)
        seen = len(train) * a.epochs
    secs = time.perf_counter() - t0
    pred = logits.argmax(-1)
    per_class = {name: float((pred[yva == i] == i).float().mean()) for i, name in enumerate(labels)}
    res = {"eval_accuracy": float((pred == yva).float().mean()), "eval_per_class_accuracy": per_class, "eval_samples": len(yva),
           "train_runtime": secs, "train_images_per_second": seen / secs, "freeze_backbone": a.freeze_backbone,
           "torch_num_threads": torch.get_num_threads(), "device": str(dev), "num_workers": a.num_workers}
    os.makedirs(a.output_dir, exist_ok=True)
    with open(os.path.join(a.output_dir, "eval_results.json"), "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
