"""Golden fixture for tests/distill.rs: the distillation loss on fixed logits, computed as the
knowledge-distillation literature writes it in PyTorch (Hinton et al. 2015; Patient-KD's
(1 - alpha) * CE + alpha * T^2 * KL(teacher || student), KL as F.kl_div(log_softmax(s / T),
softmax(t / T), reduction="batchmean"); for regression (1 - alpha) * MSE(s, y) + alpha * MSE(s, t)),
with the gradient with respect to the student's logits. Token classification: both terms over the
labelled tokens (label != -100). Extractive QA (DistilBERT's run_squad_w_distillation): the mean of
the start and end CEs and of the start and end KLs, each distribution taken over a row's real tokens
(written here as a loop over rows, independently of the masked form in src/train/kd.rs). TinyBERT's
hidden-state term: sum over student states m of MSE(student[m], teacher[m * N / K]) over real tokens.

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

def kl(s, t, temp):
    return F.kl_div(F.log_softmax(s / temp, -1), F.softmax(t / temp, -1), reduction="batchmean")


token_cases = []
for alpha, t in ((0.0, 1.0), (0.5, 5.0), (1.0, 20.0), (0.3, 2.0)):
    student = (torch.randn(3, 7, 5) * 3).double()
    teacher = (torch.randn(3, 7, 5) * 4).double()
    teacher[0, 1] *= 20
    labels = torch.randint(0, 5, (3, 7))
    labels[torch.rand(3, 7) < 0.3] = -100
    labels[2, 4:] = -100  # padding
    s = student.clone().requires_grad_(True)
    m = labels != -100
    loss = (1 - alpha) * F.cross_entropy(s.view(-1, 5), labels.view(-1), ignore_index=-100) + alpha * t * t * kl(s[m], teacher[m], t)
    loss.backward()
    token_cases.append({"alpha": alpha, "temperature": t, "student": s.detach().tolist(), "teacher": teacher.tolist(), "labels": labels.tolist(),
                        "loss": loss.item(), "grad": s.grad.tolist()})

span_cases = []
for alpha, t in ((0.0, 1.0), (0.5, 5.0), (1.0, 2.0), (0.7, 10.0)):
    lengths = [9, 6, 4]
    start, end = (torch.randn(3, 9) * 3).double(), (torch.randn(3, 9) * 3).double()
    t_start, t_end = (torch.randn(3, 9) * 4).double(), (torch.randn(3, 9) * 4).double()
    t_start[1, 2] = 60.0  # a certain teacher
    mask = torch.tensor([[1] * n + [0] * (9 - n) for n in lengths])
    sp, ep = torch.tensor([3, 0, 2]), torch.tensor([5, 4, 3])
    s, e = start.clone().requires_grad_(True), end.clone().requires_grad_(True)
    hard = (F.cross_entropy(s, sp) + F.cross_entropy(e, ep)) / 2
    soft = sum((kl(s[i:i + 1, :n], t_start[i:i + 1, :n], t) + kl(e[i:i + 1, :n], t_end[i:i + 1, :n], t)) / 2 for i, n in enumerate(lengths)) / len(lengths)
    loss = (1 - alpha) * hard + alpha * t * t * soft
    loss.backward()
    span_cases.append({"alpha": alpha, "temperature": t, "start": s.detach().tolist(), "end": e.detach().tolist(), "teacher_start": t_start.tolist(),
                       "teacher_end": t_end.tolist(), "mask": mask.tolist(), "start_positions": sp.tolist(), "end_positions": ep.tolist(),
                       "loss": loss.item(), "grad_start": s.grad.tolist(), "grad_end": e.grad.tolist()})

hidden_cases = []
for k, n in ((2, 4), (3, 6), (1, 1)):
    mask = torch.tensor([[1, 1, 1, 1, 0], [1, 1, 0, 0, 0]])
    student = [torch.randn(2, 5, 4).double() for _ in range(k + 1)]
    teacher = [torch.randn(2, 5, 4).double() * 2 for _ in range(n + 1)]
    s = [x.clone().requires_grad_(True) for x in student]
    real = mask.bool()
    loss = sum(F.mse_loss(s[m][real], teacher[m * n // k][real]) for m in range(k + 1))
    loss.backward()
    hidden_cases.append({"student": [x.detach().tolist() for x in s], "teacher": [x.tolist() for x in teacher], "mask": mask.tolist(),
                         "loss": loss.item(), "grad": [x.grad.tolist() for x in s]})

path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "kd_golden.json")
with open(path, "w") as f:
    json.dump({"torch": torch.__version__, "cases": cases, "token_cases": token_cases, "span_cases": span_cases, "hidden_cases": hidden_cases}, f)
print(path, len(cases), len(token_cases), len(span_cases), len(hidden_cases))
