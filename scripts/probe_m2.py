"""Probe Table 3's protocol choices fast: two-stage M2 on a trained M1's codes, computed once.

Not the task (that is ``svae-bench run experiment=table3``): a diagnostic that trains M2 on codes
of a complete M1 run (Table 1 layout) precomputed for a few binarisations of the training images,
so one setting costs M2's time alone. It prints, per epoch, the training terms, the accuracy on
the first 2000 test images of the *generative* classifier argmax_y L(z1, y), and the validation
and test accuracy of q(y | z1). ``--ceiling`` instead prints two upper references on the same
codes: 5-NN with all 50k training labels and an MLP (one hidden layer of 500) trained on them.

    python scripts/probe_m2.py RUN_DIR --data-root ../shared/data --epochs 30
    python scripts/probe_m2.py RUN_DIR --data-root ../shared/data --log-q-weight 0.1   # Kingma et al.'s weight
    python scripts/probe_m2.py RUN_DIR --data-root ../shared/data --ceiling

RUN_DIR: a complete M1 run (config.yaml, checkpoint.pt). The labelled subset and the M2 weights
follow ``--seed`` as in the task; the weight of the labelled mean log q defaults to the task's
alpha = 10 (``--log-q-weight``; Kingma et al.'s is 0.1), that of the labelled mean bound to N_l / N.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from svae_bench.data.labels import labelled_subset
from svae_bench.data.mnist import make_mnist
from svae_bench.models.m2 import build_m2
from svae_bench.tasks.vae import model_for
from svae_bench.training import warmup_fraction

LABELS = 100


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--data-root", required=True)
    p.add_argument("--binarize-seed", type=int, default=0, help="fixed binarisation of validation/test")
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--z2", type=int, default=10)
    p.add_argument("--z2-family", default="gaussian", choices=["gaussian", "vmf"])
    p.add_argument("--log-q-weight", type=float, default=10.0)
    p.add_argument("--bound-weight", type=float, default=None, help="weight of the labelled mean bound")
    p.add_argument("--sample", action="store_true", help="z1 drawn from q(z1|x) each step (else the mean)")
    p.add_argument("--lr", type=float, default=3e-3, help="M2's Adam lr (the task's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--binarizations", type=int, default=5, help="training-set binarisations, one per epoch")
    p.add_argument("--offset", type=float, default=1.0, help="M2's vMF concentration offset (the task's 1)")
    p.add_argument("--warmup", type=int, default=0, help="epochs of linear warm-up of M2's KL (epoch / E)")
    p.add_argument("--ceiling", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)

    cfg = yaml.safe_load((a.run_dir / "config.yaml").read_text())
    data = make_mnist(data_root=a.data_root, n_val=10000, split_seed=0, binarize_seed=a.binarize_seed)
    m1 = model_for(cfg["model"], int(cfg["latent_dim"]), data)
    m1.load_state_dict(torch.load(a.run_dir / "checkpoint.pt", weights_only=True, map_location="cpu")["model"])
    m1.eval()

    @torch.no_grad()
    def features(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([m1.encoder(x[i : i + 5000]) for i in range(0, len(x), 5000)])

    @torch.no_grad()
    def codes(h: torch.Tensor, sample: bool = False) -> torch.Tensor:
        q = m1.head.posterior(h)
        return q.sample() if sample else m1.head.code(q)

    gen = torch.Generator().manual_seed(123)
    train_h = torch.stack([features(torch.bernoulli(data.train.x, generator=gen)) for _ in range(a.binarizations)])
    val_codes, test_codes = codes(features(data.val.x)), codes(features(data.test.x))
    if a.ceiling:
        ceiling(codes(train_h[0]), data.train.y, test_codes, data.test.y)
        return
    lab = labelled_subset(data.train.y, LABELS, a.seed)
    lab_h = features(torch.bernoulli(data.train.x[lab], generator=torch.Generator().manual_seed(a.seed + 4)))
    lab_y, lab_codes = data.train.y[lab], codes(lab_h)
    n = len(data.train)
    knn = lab_y[torch.cdist(test_codes, lab_codes).topk(5, largest=False).indices].mode(-1).values
    print(f"5-NN on the {LABELS} labelled codes: test {(knn == data.test.y).double().mean():.4f}", flush=True)

    m2 = build_m2(
        z1_ambient=test_codes.shape[1],
        z1_family=cfg["model"]["latent"],
        z2_dim=a.z2,
        z2_family=a.z2_family,
        hidden_dims=[500],
        concentration_offset=a.offset,
    )
    opt = torch.optim.Adam(m2.parameters(), lr=a.lr)
    bound_weight = LABELS / n if a.bound_weight is None else a.bound_weight
    onehot = F.one_hot(lab_y, 10).to(lab_codes.dtype)

    def accuracy(c: torch.Tensor, y: torch.Tensor) -> float:
        with torch.no_grad():
            return (m2.classify(c).argmax(-1) == y).double().mean().item()

    for epoch in range(1, a.epochs + 1):
        t0 = time.perf_counter()
        m2.train()
        h = train_h[(epoch - 1) % a.binarizations]
        perm = torch.randperm(n)
        sums = torch.zeros(3)
        beta = warmup_fraction(epoch, a.warmup)  # M2's KL weight this epoch, as the task's
        for i in range(0, n, 100):
            z1u = codes(h[perm[i : i + 100]], a.sample)
            z1l = codes(lab_h, True) if a.sample else lab_codes
            u = m2.unlabelled_bound(z1u, kl_weight=beta).mean()
            lb = m2.labelled_bound(z1l, onehot, kl_weight=beta).mean()
            lq = F.log_softmax(m2.classify(z1l), -1).gather(1, lab_y[:, None]).mean()
            loss = -((n - LABELS) / n * u + bound_weight * lb + a.log_q_weight * lq)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += torch.stack([u, lb, lq]).detach()
        m2.eval()
        with torch.no_grad():
            zt, yt = test_codes[:2000], data.test.y[:2000]
            per_class = [
                m2.labelled_bound(zt, F.one_hot(torch.full((2000,), c), 10).to(zt.dtype), False) for c in range(10)
            ]
            generative = (torch.stack(per_class, -1).argmax(-1) == yt).double().mean().item()
            # where the information about z1 goes: KL of q(z2 | z1, y) and log p(z1 | y, z2) at the true y
            onehot_t = F.one_hot(yt, 10).to(zt.dtype)
            q2 = m2.q_z2(zt, onehot_t)
            kl2 = m2.z2_head.kl(q2).mean().item()
            rec = m2.p_z1(onehot_t, m2.z2_head.code(q2)).log_prob(zt).mean().item()
        u, lb, lq = (sums / (n // 100)).tolist()
        print(
            f"epoch {epoch} U {u:.3f} L {lb:.3f} log q {lq:.4f} generative {generative:.4f} "
            f"KL(z2) {kl2:.2f} log p(z1|y,z2) {rec:.2f} "
            f"val {accuracy(val_codes, data.val.y):.4f} test {accuracy(test_codes, data.test.y):.4f} "
            f"{time.perf_counter() - t0:.1f}s",
            flush=True,
        )


def ceiling(train: torch.Tensor, train_y: torch.Tensor, test: torch.Tensor, test_y: torch.Tensor) -> None:
    """5-NN and a supervised MLP with all training labels, on the same codes: what any classifier
    of these codes can reach."""
    pred = torch.cat(
        [
            train_y[torch.cdist(test[i : i + 1000], train).topk(5, largest=False).indices].mode(-1).values
            for i in range(0, len(test), 1000)
        ]
    )
    print(f"5-NN, all {len(train)} labels: test {(pred == test_y).double().mean():.4f}", flush=True)
    net = torch.nn.Sequential(torch.nn.Linear(train.shape[1], 500), torch.nn.Softplus(), torch.nn.Linear(500, 10))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for epoch in range(1, 31):
        for idx in torch.randperm(len(train)).split(100):
            loss = F.cross_entropy(net(train[idx]), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (net(test).argmax(-1) == test_y).double().mean().item()
        print(f"MLP, all labels, epoch {epoch}: test {acc:.4f}", flush=True)


if __name__ == "__main__":
    main()
