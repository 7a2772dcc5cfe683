"""Golden fixture for tests/distill.rs: the distillation loss on fixed logits, computed as the
knowledge-distillation literature writes it in PyTorch (Hinton et al. 2015; Patient-KD's
(1 - alpha) * CE + alpha * T^2 * KL(teacher || student), KL as F.kl_div(log_softmax(s / T),
softmax(t / T), reduction="batchmean"); for regression (1 - alpha) * MSE(s, y) + alpha * MSE(s, t)),
with the gradient with respect to the student's logits.

    $(bash tools/setup-reference.sh) tools/make_kd_golden.py   # writes tests/fixtures/kd_golden.json
"""
import json, os

import torch
import torch.nn.functional as F

torch.manual_seed(0)
cases = []
for num_labels, problem in ((2, "single_label_classification"), (3, "single_label_classification"), (1, "regression")):
    student = (torch.randn(6, num_labels) * 3).double()
    teacher = (torch.randn(6, num_labels) * 4).double()
    teacher[0] = teacher[0] * 20  # a confident teacher row: softmax close to one-hot
    labels = torch.randint(0, num_labels, (6,)) if problem != "regression" else torch.rand(6).double() * 5
    for alpha, t in ((0.0, 1.0), (0.5, 5.0), (0.7, 10.0), (1.0, 20.0), (0.2, 2.0)):
        s = student.clone().requires_grad_(True)
        if problem == "regression":
            loss = (1 - alpha) * F.mse_loss(s.squeeze(-1), labels) + alpha * F.mse_loss(s.squeeze(-1), teacher.squeeze(-1))
        else:
            hard = F.cross_entropy(s, labels)
            soft = F.kl_div(F.log_softmax(s / t, -1), F.softmax(teacher / t, -1), reduction="batchmean")
            loss = (1 - alpha) * hard + alpha * t * t * soft
        loss.backward()
        cases.append({"problem": problem, "alpha": alpha, "temperature": t, "student": s.detach().tolist(), "teacher": teacher.tolist(),
                      "labels": labels.tolist(), "loss": loss.item(), "grad": s.grad.tolist()})
path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "kd_golden.json")
with open(path, "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases}, f)
print(path, len(cases))
