"""The M1+M2 task (Table 3): semi-supervised classification with M2 (Kingma et al. 2014) on a trained M1.

A run is one cell: a family (``N+N``, ``S+S``, ``S+N``: M1's latent, then M2's), z1 =
``latent_dim``, z2 = ``semisup.z2_dim``, a seed. Its M1 is exactly a Table 1 run, in its own
run directory ``<runs_root>/<semisup.m1_experiment>/<dataset>/<model>/d=<z1>/beta=1/seed=<s>``:
reused when complete and made with the same settings (a run made with other settings is an
error, never silently reused), trained first through the harness otherwise (resumable, shown by
``status``, shared by every cell that needs it; a cell whose M1 another process is training
waits for it). Then M2 trains on M1's codes (:mod:`svae_bench.tasks.m1m2_objective`) and the
test accuracy of argmax q(y | z1 = M1's posterior location) is measured on the test images.

The labelled images: ``semisup.labels`` training images, the same number per class, drawn by
the run's seed only (:func:`svae_bench.data.labels.labelled_subset`); the rest of the training
split is unlabelled (the labelled images are not also in the unlabelled stream, as in Kingma et al.'s
code). Artefacts: metrics.csv (a row per M2 epoch), checkpoint.pt (M2's weights).

Before anything is written (:meth:`M1M2Task.check` and :meth:`M1M2Task.check_data`, which a
sweep's preflight runs for every cell): every value, each count with its whole range; every class
of the training split has ``semisup.labels / classes`` points; the M1 run directory can hold a
run; a complete M1 there was made with this cell's M1 settings (``trainer.fused`` included: another
Adam kernel trains another M1) and its checkpoint.pt loads with weights_only (no code in it runs)
into the M1 this cell builds. A cell whose run directory is its own M1's is refused in one line
when it starts (it would otherwise wait for its own lock for ever).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from ..checks import check_values, integer, list_of, name, number, one_of, positive_int, resolved
from ..data import DataBundle, Split, build_dataset
from ..data.labels import labelled_subset, labels_problem, training_labels
from ..data.mnist import FILES as MNIST_FILES
from ..data.mnist import idx_path, mnist_raw_dir
from ..errors import ConfigError
from ..models import VAE, build_model
from ..models.m2 import build_m2
from ..models.vae import ACTIVATIONS
from ..records import CHECKPOINT_FILE, RESULT_FILE, is_complete_record, is_locked, read_result
from ..schema import TrainerConfig, converters, migrate_config, run_subdir, typed
from ..training import TrainSettings, train
from .base import RunContext, Task, TaskOutput, loop_fields
from .harness import config_differences, run_one, without_keys
from .m1m2_objective import EARLY_STOP, M1M2, Z1_INPUTS, M2Objective, active_coordinates
from .registry import register_task
from .vae import VaeTask, model_for, plain, set_up_process
from .vae_checks import n_train_points
from .vae_objective import trainer_settings

log = logging.getLogger("svae_bench")

#: family -> (M1's latent, M2's z2 latent)
FAMILIES = {"N+N": ("gaussian", "gaussian"), "S+S": ("vmf", "vmf"), "S+N": ("vmf", "gaussian")}
SEMISUP = {
    "z2_dim": positive_int(100_000),
    "z2_latent": one_of("gaussian", "vmf"),
    "labels": positive_int(10**8),
    "alpha": number(0),
    "hidden_dims": list_of(positive_int(10**5), "positive integers"),
    "activation": one_of(*ACTIVATIONS),
    "training": one_of("two_stage", "joint"),
    "z1": one_of(*Z1_INPUTS),
    "early_stop": one_of(*EARLY_STOP),
    "warmup_epochs": integer(0, 10**7),
    "prune_below": number(0),
    "m1_experiment": name,
}
M2_TRAINER = {  # every count with its upper bound, so that a refusal says the whole range
    "lr": number(0, lo_open=True),
    "batch_size": positive_int(10**8),
    "max_epochs": positive_int(10**7),
    "patience": positive_int(10**7),
    "nan_retries": integer(0, 1000),  # as trainer.nan_retries, which it defaults to
    "nan_lr_factor": number(0, 1, lo_open=True),
}


def m2_schedule(m2_trainer: Mapping[str, Any]) -> dict[str, Any]:
    """The training settings ``semisup.trainer`` gives M2 (checked by :data:`M2_TRAINER`), typed: each
    key it has replaces the run trainer's (:func:`~svae_bench.tasks.vae_objective.trainer_settings`)."""
    missing = [key for key in M2_TRAINER if key not in m2_trainer]
    if missing:
        raise ConfigError(f"semisup.trainer.{missing[0]} is missing (the semisup.trainer config has no value)")
    convert = converters(TrainerConfig)  # each key has the type of the run trainer's key of that name
    return {key: convert[key](m2_trainer[key]) for key in M2_TRAINER}


def m2_settings(values: Mapping[str, Any]) -> TrainSettings:
    """The loop's settings of M2: its own schedule and fault handling (``semisup.trainer``; by default
    the budget's M1 schedule), the run trainer's progress bar and kernels (compile, fused)."""
    trainer = typed(TrainerConfig, values["trainer"], "trainer.")
    return trainer_settings(trainer, **m2_schedule(values["semisup"]["trainer"]))


#: config keys of the M1+M2 run that are not M1's
OWN_KEYS = ("semisup", "family", "task", "experiment_name")
#: keys that may differ between a reused M1 run and the one this cell would train (n_seeds: the
#: sweeps' seed counts, which do not change a run)
M1_IGNORED = ("n_seeds", *VaeTask.resume_ignored)
#: seconds between looks at an M1 run another process is training
M1_POLL_SECONDS = 10.0
#: unlabelled images on which semisup.prune_below measures M1's coordinates (Kingma et al.'s 1000)
PRUNE_IMAGES = 1000


def m1_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The config of this cell's M1: a Table 1 run (task vae) of the same model, d = z1, seed and
    settings, in the experiment ``semisup.m1_experiment``; never forced."""
    out = {k: v for k, v in values.items() if k not in OWN_KEYS}
    return {"task": "vae", "experiment_name": values["semisup"]["m1_experiment"], **out, "beta": 1.0, "force": False}


def m1_dir(values: Mapping[str, Any]) -> Path:
    """M1's run directory, as a Table 1 sweep names it: :func:`svae_bench.schema.run_subdir`, the
    function behind conf/hydra/default.yaml's run directory, below ``runs_root``."""
    m1 = m1_values(values)
    subdir = run_subdir(
        m1["experiment_name"], m1["dataset"]["name"], m1["model"]["name"], m1["latent_dim"], m1["beta"], m1["seed"]
    )
    return Path(str(m1["runs_root"])) / subdir


def m1_mismatch(record: dict, values: Mapping[str, Any]) -> list[str]:
    """Settings that differ between a complete M1 record and this cell's M1 (empty: reusable).

    Every setting that changes what M1 learns counts, ``trainer.fused`` included (Adam's fused
    kernel rounds differently: another kernel trains another M1); a record made before a trainer
    key existed ran with what :func:`svae_bench.schema.migrate_config` says."""
    recorded = record.get("config")
    if not isinstance(recorded, dict):
        return ["config (the record has none)"]
    old = without_keys(migrate_config(recorded), M1_IGNORED)
    new = without_keys(migrate_config(m1_values(values)), M1_IGNORED)
    return config_differences(old, new)


@dataclass
class Prepared:
    data: DataBundle
    labelled: torch.Tensor  # indices into the training split
    device: torch.device
    m1_dir: Path
    m1_reused: bool


class M1M2Task(Task):
    name = "m1m2"
    resume_ignored = M1_IGNORED  # M2 resumes under the same rule as its M1 is reused

    def check(self, cfg: Any) -> dict:
        values = resolved(cfg, exclude=("hydra",))  # once, naming a value whose interpolation fails
        own = {k: values[k] for k in ("semisup", "family") if k in values}
        values = {**VaeTask().check({k: v for k, v in values.items() if k not in own}), **own}
        family = values.get("family")
        if family not in FAMILIES:
            raise ConfigError(f"family={family!r} is unknown; allowed: {', '.join(FAMILIES)}")
        semisup = values.get("semisup")
        if not isinstance(semisup, Mapping) or not isinstance(semisup.get("trainer"), Mapping):
            raise ConfigError("semisup must be a config group with a trainer; experiment=table3 sets it")
        check_values(semisup, SEMISUP, "semisup.")
        check_values(semisup["trainer"], M2_TRAINER, "semisup.trainer.")
        m2_schedule(semisup["trainer"])  # every key present
        m1_latent, z2_latent = FAMILIES[family]
        if values["model"]["latent"] != m1_latent or semisup["z2_latent"] != z2_latent:
            raise ConfigError(
                f"family={family} needs model.latent={m1_latent} and semisup.z2_latent={z2_latent}; got "
                f"{values['model']['latent']} and {semisup['z2_latent']} (choose the family, not the model)"
            )
        if semisup.get("prune_below", 0) > 0 and m1_latent != "gaussian":
            raise ConfigError(
                f"semisup.prune_below={semisup['prune_below']} drops coordinates of a Gaussian M1's code; "
                f"family={family} has a spherical M1, whose coordinates cannot be dropped (allowed: 0)"
            )
        if values["beta"] != 1.0:
            raise ConfigError(f"beta={values['beta']} must be 1 for M1+M2 (M1 is a Table 1 run)")
        n_classes = _n_classes(values["dataset"])
        if semisup["labels"] % n_classes:
            raise ConfigError(
                f"semisup.labels={semisup['labels']} must be a positive multiple of the {n_classes} classes"
            )
        n_train = n_train_points(values["dataset"])
        if semisup["labels"] >= n_train:
            raise ConfigError(f"semisup.labels={semisup['labels']} must be fewer than the {n_train} training points")
        return values

    def check_data(self, values: dict) -> None:
        """The data files; that every class of the training split has ``semisup.labels / classes``
        points; and that a complete M1 run at this cell's M1 directory (if any) was made with this
        cell's M1 settings and has weights that load (weights_only) into that M1: a sweep's
        preflight finds each of these before anything is written."""
        VaeTask().check_data(values)
        problem = labels_problem(
            int(values["semisup"]["labels"]), _training_labels(values["dataset"]), _n_classes(values["dataset"])
        )
        if problem is not None:
            raise ConfigError(problem)
        if check_m1(values):
            check_m1_weights(values, m1_dir(values))

    def data_key(self, values: dict) -> None:
        return None  # the M1 check depends on every cell's own M1

    def dependencies(self, values: dict) -> list[Path]:
        return [m1_dir(values)]

    def identity(self, cfg: Any) -> dict[str, Any]:
        return {
            "task": self.name,
            "experiment": str(cfg.experiment_name),
            "model": str(cfg.family),
            "dataset": str(cfg.dataset.name),
            "latent_dim": int(cfg.latent_dim),
            "z2_dim": int(cfg.semisup.z2_dim),
            "beta": float(cfg.beta),
            "seed": int(cfg.seed),
        }

    def prepare(self, cfg: DictConfig) -> Prepared:
        values = self.check(cfg)
        directory = m1_dir(values)
        reused = check_m1(values)
        if reused:  # before the cell's directory is touched (the preflight has checked it too)
            check_m1_weights(values, directory)
        device = set_up_process(cfg)
        data = build_dataset(plain(cfg.dataset))
        n_classes = _n_classes(values["dataset"])  # the data set's classes, as check counted them
        labelled = labelled_subset(data.train.y, int(cfg.semisup.labels), int(cfg.seed), n_classes)
        return Prepared(data, labelled, device, directory, reused)

    def describe(self, cfg: DictConfig, prepared: Prepared) -> str:
        return (
            f"M1+M2 {cfg.family} on {prepared.data.name}, z1={cfg.latent_dim}, z2={cfg.semisup.z2_dim}, "
            f"{len(prepared.labelled)} labels, seed={cfg.seed}; M1 {prepared.m1_dir}"
            f" ({'complete, reused' if prepared.m1_reused else 'to train first'})"
        )

    def run(self, cfg: DictConfig, prepared: Prepared, ctx: RunContext) -> TaskOutput:
        values = OmegaConf.to_container(cfg, resolve=True)
        if same_directory(ctx.out_dir, prepared.m1_dir):  # it would wait for its own lock for ever
            raise ConfigError(own_m1_message(ctx.out_dir))
        t_m1 = time.perf_counter()
        trained_m1 = ensure_m1(values, prepared.m1_dir)
        m1_seconds = time.perf_counter() - t_m1
        data, device = prepared.data, prepared.device
        m1 = model_for(values["model"], int(cfg.latent_dim), data)
        load_m1_weights(m1, prepared.m1_dir)
        semisup = values["semisup"]
        n_classes = _n_classes(values["dataset"])
        keep = None
        if semisup.get("prune_below", 0) > 0:  # Kingma et al.: M1's location on 1000 unlabelled images
            probe = data.train.x[unlabelled_indices(len(data.train), prepared.labelled)[:PRUNE_IMAGES]]
            keep = active_coordinates(m1, probe, float(semisup["prune_below"]))
            if keep.numel() == 0:
                raise ConfigError(f"semisup.prune_below={semisup['prune_below']} drops every coordinate of M1's code")
            log.info("M2 sees %d of M1's %d coordinates", keep.numel(), m1.head.ambient_dim)
        torch.manual_seed(int(cfg.seed))  # M2's initial weights: a function of the seed
        m2 = build_m2(
            z1_ambient=m1.head.ambient_dim if keep is None else keep.numel(),
            z1_family=values["model"]["latent"],
            z2_dim=semisup["z2_dim"],
            z2_family=semisup["z2_latent"],
            hidden_dims=semisup["hidden_dims"],
            activation=semisup["activation"],
            n_classes=n_classes,
            concentration_offset=values["model"].get("concentration_offset", 1.0),
        )
        model = M1M2(m1, m2, joint=semisup["training"] == "joint", keep=keep).to(device)
        gen = torch.Generator().manual_seed(int(cfg.seed) + 4)
        labelled_x = data.train.x[prepared.labelled]
        if data.binarize_train:
            labelled_x = torch.bernoulli(labelled_x, generator=gen)  # one fixed binarisation
        objective = M2Objective(
            labelled_x=labelled_x.to(device),
            labelled_y=data.train.y[prepared.labelled].to(device),
            n_train=len(data.train),
            val_y=data.val.y,
            alpha=float(semisup["alpha"]),
            z1=semisup["z1"],
            early_stop=semisup["early_stop"],
            warmup_epochs=int(semisup["warmup_epochs"]),
        )
        result = train(
            model,
            unlabelled_only(data, prepared.labelled),  # the loop's batches: the unlabelled images
            objective,
            m2_settings(values),
            int(cfg.seed),
            **ctx.loop_kwargs(),
        )
        ctx.save_checkpoint(model, result.best_epoch)
        t0 = time.perf_counter()
        test_acc = model.accuracy(data.test.x.to(device), data.test.y)
        val_acc = model.accuracy(data.val.x.to(device), data.val.y)
        labelled_acc = model.accuracy(labelled_x.to(device), data.train.y[prepared.labelled])
        n = str(len(prepared.labelled))
        metrics = {"acc": {n: test_acc}, "val_acc": {n: val_acc}, "labelled_acc": {n: labelled_acc}}
        runs_root = Path(str(values["runs_root"]))
        return TaskOutput(
            metrics=metrics,
            identity={"budget": str(cfg.get("budget_name", "none")), "labels": len(prepared.labelled)},
            fields={
                "m1_run": _relative(prepared.m1_dir, runs_root),
                "m1_trained_by_this_run": trained_m1,
                **loop_fields(result),
                "m1_seconds": round(m1_seconds, 3),
                "train_seconds": round(result.seconds, 3),
                "eval_seconds": round(time.perf_counter() - t0, 3),
                "device": str(device),
            },
            summary=f"test accuracy {test_acc:.4f} (validation {val_acc:.4f})",
        )


def unlabelled_indices(n_train: int, labelled: torch.Tensor) -> torch.Tensor:
    """The training indices (ascending, int64) not in ``labelled``: M2's unlabelled images."""
    mask = torch.ones(n_train, dtype=torch.bool)
    mask[labelled] = False
    return torch.nonzero(mask).reshape(-1)


def unlabelled_only(data: DataBundle, labelled: torch.Tensor) -> DataBundle:
    """``data`` with its training split cut to the images not in ``labelled`` (indices into it): the
    unlabelled stream of M2's training, so that no labelled image also counts as an unlabelled one."""
    keep = unlabelled_indices(len(data.train), labelled)
    train = data.train
    truth = None if train.truth is None else train.truth[keep]
    return dataclasses.replace(data, train=Split(train.x[keep], train.y[keep], truth))


def check_m1(values: Mapping[str, Any], directory: Path | None = None) -> bool:
    """Whether this cell's M1 (at ``directory``, default its usual place) is complete and usable:
    ConfigError if it was made with other settings or has lost its weights, or if its directory or
    result.json is something a run cannot be made in or read from (a file, a directory)."""
    directory = m1_dir(values) if directory is None else directory
    require_m1_place(directory)
    record = read_result(directory)
    if not is_complete_record(record):
        return False
    changed = m1_mismatch(record, values)
    if changed:
        raise ConfigError(
            f"the M1 run {directory} was made with other settings ({', '.join(changed[:6])}); "
            f"remove it, or set semisup.m1_experiment=NAME to train this cell's M1 elsewhere"
        )
    require_m1_weights(directory)
    return True


def require_m1_place(directory: Path) -> None:
    """ConfigError unless ``directory`` can hold M1's run: the first of it and its parents that
    exists is a directory, and its result.json, if there is one, is a regular file (a directory
    there would stop the harness with a traceback when it trains the M1)."""
    for place in (directory, *directory.parents):
        if place.is_dir():
            break
        if os.path.lexists(place):
            raise ConfigError(
                f"the M1 run directory {directory} cannot be made: {place} exists and is not a directory; "
                f"remove it, or set semisup.m1_experiment=NAME"
            )
    result = directory / RESULT_FILE
    if result.exists() and not result.is_file():  # a dangling link is no record: the M1 is trained again
        raise ConfigError(
            f"the M1 run's {result} is not a regular file (a directory, a FIFO or a device); remove it "
            f"to train this cell's M1 again, or set semisup.m1_experiment=NAME"
        )


def m1_without_data(values: Mapping[str, Any]) -> VAE | None:
    """The M1 this cell builds, for its parameter shapes only, from the config alone (no data read);
    None for a data set whose observation size the config does not say."""
    ds = values["dataset"]
    if ds.get("name") == "mnist":
        observed = math.prod(MNIST_FILES["train-images-idx3-ubyte"][1][1:])
    elif ds.get("name") == "synthetic":
        observed = int(ds["observed_dim"])
    else:
        return None
    model = values["model"]
    return build_model(
        latent=model["latent"],
        hidden_dims=model["hidden_dims"],
        activation=model.get("activation", "relu"),
        concentration_offset=model.get("concentration_offset", 1.0),
        latent_dim=int(values["latent_dim"]),
        observed_dim=observed,
        likelihood="bernoulli",  # the likelihood and its scale carry no parameters
    )


def load_m1_weights(m1: VAE, directory: Path) -> None:
    """M1's weights from its run's checkpoint.pt into ``m1`` (weights_only: loading runs no code);
    ConfigError (one line naming the file) when they cannot be loaded or do not fit."""
    path = directory / CHECKPOINT_FILE
    remedy = f"; remove the M1 run {directory} to train it again, or set semisup.m1_experiment=NAME"
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # refused by the weights-only unpickler, truncated, empty, not a torch file
        raise ConfigError(
            f"M1: {path} cannot be loaded as weights ({_first_line(err)}; nothing in it ran){remedy}"
        ) from None
    if not isinstance(saved, dict) or not isinstance(saved.get("model"), dict):
        raise ConfigError(
            f"M1: {path} is not a checkpoint of this project (a dict with the model's state_dict){remedy}"
        )
    try:
        m1.load_state_dict(saved["model"])
    except Exception as err:  # shapes, missing or extra keys, values that are not tensors
        raise ConfigError(
            f"M1: {path} does not fit the model its run's config builds: {_first_line(err)}{remedy}"
        ) from None


def _first_line(err: BaseException) -> str:
    """The line of an error that says what is wrong (not torch's headers and advice), cut to 200 characters."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    advice = ("Weights only load failed", "Check the documentation")
    useful = [line for line in lines if not line.endswith(":") and not line.startswith(advice)]
    return (useful or lines or [type(err).__name__])[0][:200]


#: (checkpoint, its size, mtime and inode, the M1's settings): weights already checked in this process
_CHECKED_WEIGHTS: set[tuple] = set()


def check_m1_weights(values: Mapping[str, Any], directory: Path) -> None:
    """ConfigError (one line naming the file) unless the complete M1 run's checkpoint.pt loads with
    weights_only and fits the M1 this cell builds: the preflight's check, before anything is written
    (once per checkpoint and model in a process: 27 cells share 6 M1s)."""
    path = directory / CHECKPOINT_FILE
    try:
        st = path.stat()
    except OSError:
        return  # gone since require_m1_weights: the cell's own load says so
    shape = repr((values["model"], values["latent_dim"], values["dataset"]))  # what the M1's shapes depend on
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ino, shape)
    if key in _CHECKED_WEIGHTS:
        return
    model = m1_without_data(values)
    if model is not None:
        load_m1_weights(model, directory)
    _CHECKED_WEIGHTS.add(key)


def same_directory(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one directory (through links too)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(a).resolve() == Path(b).resolve()


def own_m1_message(directory: Path) -> str:
    return (
        f"the run directory {directory} is this cell's own M1 run directory (semisup.m1_experiment and "
        f"hydra.run.dir / hydra.sweep.subdir name one directory); give the cell a directory of its own"
    )


def require_m1_weights(directory: Path) -> None:
    """ConfigError unless the complete M1 run at ``directory`` still has its weights (checkpoint.pt):
    a record copied without them (results/ commits records only) cannot serve as an M1."""
    if not (directory / CHECKPOINT_FILE).is_file():
        raise ConfigError(
            f"the M1 run {directory} is complete but has no {CHECKPOINT_FILE} (its weights; committed records "
            f"leave them out); remove its result.json to train it again, or set semisup.m1_experiment=NAME"
        )


def ensure_m1(values: dict, directory: Path) -> bool:
    """Make sure this cell's M1 is complete: train it through the harness if needed, or wait for
    the process that is training it. Returns whether this call trained it."""
    m1_cfg = OmegaConf.create(m1_values(values))
    trained = False
    while True:
        if check_m1(values, directory):  # also when another process finished it while this cell waited
            return trained
        if is_locked(directory):
            log.info("M1 %s is being trained by another process: waiting for it", directory)
            while is_locked(directory):
                time.sleep(M1_POLL_SECONDS)
            continue
        log.info("M1 %s: training it first (a Table 1 run)", directory)
        trained = run_one(m1_cfg, directory) is not None or trained


def _relative(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def _n_classes(dataset: Mapping[str, Any]) -> int:
    return int(dataset.get("n_components", 10)) if dataset.get("name") == "synthetic" else 10


@functools.lru_cache(maxsize=16)
def _cached_training_labels(key: str, labels_file: tuple) -> torch.Tensor:
    return training_labels(json.loads(key))


def _training_labels(dataset: Mapping[str, Any]) -> torch.Tensor:
    """:func:`~svae_bench.data.labels.training_labels`, once per dataset config (and MNIST labels
    file) in a process: the preflight checks every cell of a sweep."""
    labels_file: tuple = ()
    if dataset.get("name") == "mnist":
        try:
            st = idx_path(mnist_raw_dir(dataset.get("data_root")), "train-labels-idx1-ubyte").stat()
            labels_file = (st.st_size, st.st_mtime_ns, st.st_ino)
        except OSError:
            pass
    return _cached_training_labels(json.dumps(dict(dataset), sort_keys=True), labels_file)


register_task(M1M2Task())
