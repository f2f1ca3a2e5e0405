"""What M2 is trained to maximise on top of M1 (Kingma et al. 2014), as a training-loop objective.

Per training step: a minibatch of unlabelled images (the loop's batch, dynamically binarised)
and all the labelled images. With N training images of which N_l are labelled, Kingma et al.'s
objective (2014, eq. 9) sum_l L + sum_u U + alpha N E_l[log q(y | z1)], divided by N, is

    (N_u / N) mean_u U(z1) + (N_l / N) mean_l L(z1, y) + alpha mean_l log q(y | z1)

(nats per image). Kingma et al. use alpha = 0.1; their code (learn_yz_x_ss.py) weights each
labelled point's log q by alpha N / N_l, the same thing. The default here is alpha = 10, 100
times theirs: at the laptop budget (20 epochs) their weight leaves the classifier short of
fitting the 100 labels (labelled log q -0.06 to -0.5 after 20 epochs) and costs accuracy where
it matters, e.g. S+N (10, 5) seed 2: 84.8% validation against 91.6%, S+S (10, 50) seed 0: 55%
against ~71%; over 11 paired cells at z1 = 10 the heavier weight is 0.7 points ahead on
validation (results/README.md, "table3"). ``semisup.alpha=0.1`` gives Kingma's weight.

z1 is a sample of q(z1 | x) (``z1="sample"``, the task's default for every family, as in Kingma
et al.'s code) or M1's posterior location (``"mean"``), in training and in the validation bound
alike (test accuracy always reads the location). With the location, M2's bound is not a bound on
anything the joint model samples and it can grow without limit: M2 fits p(z1 | y, z2) ever more
tightly to codes that joint training is free to pack together, with no entropy term to stop it. At
z1 = 50 the bound rose to about +200 nats; N+N fell to 10% accuracy (the N-VAE's switched-off
dimensions have the same mean for every image), S+S (50, 5) to 73% and 81% and S+N (50, 5) to
84.6% (88.6% sampled); results/README.md, "table3". Kingma et al.'s other guard, dropping the
coordinates whose location varies less than 0.1 over 1000 unlabelled images (on for family N+N),
is ``semisup.prune_below`` (:func:`active_coordinates`; off by default).
Two-stage training keeps M1 fixed (no gradient reaches it); joint training also follows
M1's own ELBO on the batch and lets M2's gradient reach M1's encoder through the
reparameterised z1.

KL warm-up (``warmup_epochs`` > 0): in training the KL of q(z2 | z1, y) in every bound is weighted
min(1, epoch / warmup_epochs), as M1's KL is during its own warm-up. Family S+S uses it: with a
vMF z2 and no warm-up, q(z2 | z1, y) drops to its lowest concentration in the first epoch and
stays there (KL 0.04 nats), M2 ignores z2 and accuracy falls (results/README.md, "table3").

Validation (early stopping maximises it): the mean unlabelled bound U on the validation images
(``early_stop="bound"``, no labels used), or the validation accuracy (``"accuracy"``, which
uses the validation labels). Both are in metrics.csv, with the training terms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..models import VAE
from ..models.m2 import M2
from ..training import warmup_fraction

#: what M2 may read as z1 (``semisup.z1``): M1's posterior location, or a draw of q(z1 | x)
Z1_INPUTS = ("mean", "sample")
#: what early stopping may maximise (``semisup.early_stop``): the validation bound, or accuracy
EARLY_STOP = ("bound", "accuracy")
METRIC_COLUMNS = [
    "epoch",
    "train_objective",
    "train_unlabelled",
    "train_labelled",
    "train_labelled_log_q",
    "val_objective",
    "val_bound",
    "val_acc",
    "seconds",
]
#: validation points per forward pass (each is repeated once per class)
VALIDATION_BATCH = 500


def active_coordinates(m1: VAE, x: Tensor, min_std: float) -> Tensor:
    """The coordinates (int64 indices) of M1's posterior location whose standard deviation over the
    images x (N, D) exceeds ``min_std``: Kingma et al.'s test for a switched-off dimension (0.1 over
    1000 unlabelled images in their learn_yz_x_ss.py)."""
    with torch.no_grad():
        loc = m1.head.code(m1.head.posterior(m1.encoder(x)))
    return torch.nonzero(loc.std(0) > min_std).reshape(-1)


class M1M2(nn.Module):
    """M1 (a trained VAE) and M2 over its codes, trained as one module."""

    def __init__(self, m1: VAE, m2: M2, joint: bool, keep: Tensor | None = None):
        """``keep`` (n1,) int64: the coordinates of M1's code that M2 sees (Kingma et al.'s pruning
        of switched-off dimensions; None: all). A buffer, so a checkpoint carries it."""
        super().__init__()
        self.m1, self.m2, self.joint = m1, m2, joint
        self.register_buffer("keep", keep)
        for p in m1.parameters():
            p.requires_grad_(joint)

    def _kept(self, z1: Tensor) -> Tensor:
        return z1 if self.keep is None else z1.index_select(-1, self.keep)

    def codes(self, x: Tensor, sample: bool) -> Tensor:
        """z1 for images x (B, D): the posterior's location, or a sample (B, n1)."""
        with torch.set_grad_enabled(self.joint and torch.is_grad_enabled()):
            q = self.m1.head.posterior(self.m1.encoder(x))
            return self._kept(q.rsample() if sample else self.m1.head.code(q))

    def codes_and_elbo(self, x: Tensor, sample: bool) -> tuple[Tensor, Tensor | None]:
        """z1 for images x (B, n1) and, when training jointly, M1's one-sample ELBO on x (the batch
        mean; None otherwise), both from one encoder pass: joint M2 then encodes its batch once."""
        if not (self.joint and torch.is_grad_enabled()):
            return self.codes(x, sample), None
        q = self.m1.head.posterior(self.m1.encoder(x))
        z1 = self._kept(q.rsample() if sample else self.m1.head.code(q))
        return z1, self.m1.posterior_terms(x, q).elbo

    @torch.no_grad()
    def predict(self, x: Tensor, batch: int = 2000) -> Tensor:
        """argmax q(y | z1 = M1's posterior location) for images x (N, D) -> (N,) int64."""
        self.eval()
        chunks = [self.m2.classify(self.codes(x[i : i + batch], False)).argmax(-1) for i in range(0, len(x), batch)]
        return torch.cat(chunks)

    def accuracy(self, x: Tensor, labels: Tensor) -> float:
        """The fraction of ``labels`` (N,) that :meth:`predict` gets right for images x (N, D)."""
        return (self.predict(x).cpu() == labels.cpu()).double().mean().item()


@dataclass(frozen=True)
class M2Objective:
    """The semi-supervised objective (an :class:`~svae_bench.training.Objective`); see the module docstring.

    labelled_x (N_l, D), labelled_y (N_l,): the labelled images (fixed binarisation) and labels.
    n_train: N, all training images. val_y (N_val,): validation labels (for val_acc).
    """

    labelled_x: Tensor
    labelled_y: Tensor
    n_train: int
    val_y: Tensor
    alpha: float = 10.0
    z1: str = "sample"
    early_stop: str = "bound"
    warmup_epochs: int = 0
    columns: ClassVar[list[str]] = METRIC_COLUMNS

    def __post_init__(self) -> None:
        # a misspelt value would otherwise select silently: z1 != "sample" reads the location,
        # early_stop != "bound" the validation accuracy
        if self.z1 not in Z1_INPUTS:
            raise ValueError(f"z1={self.z1!r} must be one of {', '.join(Z1_INPUTS)}")
        if self.early_stop not in EARLY_STOP:
            raise ValueError(f"early_stop={self.early_stop!r} must be one of {', '.join(EARLY_STOP)}")
        if not (isinstance(self.warmup_epochs, int) and self.warmup_epochs >= 0):
            raise ValueError(f"warmup_epochs={self.warmup_epochs!r} must be an integer >= 0")

    def kl_weight(self, epoch: int) -> float:
        """Weight of M2's KL(q(z2 | z1, y) || p(z2)) in training at ``epoch`` (1-based): rises linearly
        to 1 over ``warmup_epochs`` (min(1, epoch / warmup_epochs)); 1 without warm-up. Validation
        and early stopping always use the bound itself."""
        return warmup_fraction(epoch, self.warmup_epochs)

    def train_terms(self, model: M1M2, batch: Tensor, epoch: int) -> tuple[Tensor, tuple[Tensor, ...]]:
        sample = self.z1 == "sample"
        n_l = self.labelled_y.shape[0]
        z1_u, m1_elbo = model.codes_and_elbo(batch, sample)
        z1_l = model.codes(self.labelled_x, sample)
        onehot = F.one_hot(self.labelled_y, model.m2.n_classes).to(z1_l.dtype)
        kl_weight = self.kl_weight(epoch)
        unlabelled = model.m2.unlabelled_bound(z1_u, kl_weight=kl_weight).mean()
        labelled = model.m2.labelled_bound(z1_l, onehot, kl_weight=kl_weight).mean()
        log_q = F.log_softmax(model.m2.classify(z1_l), -1).gather(1, self.labelled_y[:, None]).mean()
        objective = (
            (self.n_train - n_l) / self.n_train * unlabelled + n_l / self.n_train * labelled + self.alpha * log_q
        )
        if m1_elbo is not None:  # joint training also follows M1's own ELBO on the batch
            objective = objective + m1_elbo
        return objective, (unlabelled, labelled, log_q)

    @torch.no_grad()
    def validate(self, model: M1M2, x: Tensor, seed: int) -> tuple[float, dict[str, float]]:
        model.eval()
        devices = [x.device] if x.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # fixed validation noise, training noise untouched
            torch.manual_seed(seed)
            total = x.new_zeros((), dtype=torch.float64)  # summed on the device: one host sync, below
            for i in range(0, x.shape[0], VALIDATION_BATCH):
                z1 = model.codes(x[i : i + VALIDATION_BATCH], self.z1 == "sample")  # z1 as in training
                total += model.m2.unlabelled_bound(z1).sum(dtype=torch.float64)
        bound = total.item() / x.shape[0]
        acc = model.accuracy(x, self.val_y)
        objective = bound if self.early_stop == "bound" else acc
        return objective, {"val_objective": objective, "val_bound": bound, "val_acc": acc}

    def row(self, epoch: int, train_means: list[float], validation: dict[str, float]) -> dict[str, float]:
        objective, unlabelled, labelled, log_q = train_means
        return {
            "train_objective": objective,
            "train_unlabelled": unlabelled,
            "train_labelled": labelled,
            "train_labelled_log_q": log_q,
            **validation,
        }

    def summary(self, row: dict[str, float]) -> str:
        return (
            f"train {row['train_objective']:.3f} (U {row['train_unlabelled']:.3f}, L {row['train_labelled']:.3f}, "
            f"log q {row['train_labelled_log_q']:.3f})  val U {row['val_bound']:.3f}, acc {row['val_acc']:.4f}"
        )
