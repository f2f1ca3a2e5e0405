"""The typed schema (svae_bench.schema) is the one source of each trainer / eval / top-level key's
default: the YAML says the same, every config group option hands the tasks the schema's values
for every key it does not set, nan_lr_factor and fused are 0.5 and true in every task, the run
directory of Hydra and of an M1+M2 cell's M1 come from one function, and old records migrate."""

from __future__ import annotations

import json
from importlib.resources import files
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

import svae_bench.launch.resolvers  # noqa: F401  (registers the run directory's resolvers)
from svae_bench.checks import resolved
from svae_bench.errors import ConfigError
from svae_bench.schema import (
    GROUPS,
    TRAINER_BEFORE_KEY,
    EvalConfig,
    RunConfig,
    TrainerConfig,
    defaults,
    migrate_config,
    run_subdir,
    typed,
)
from svae_bench.tasks import get_task
from svae_bench.tasks.m1m2 import m1_dir, m2_settings
from svae_bench.tasks.vae_objective import trainer_settings
from svae_bench.tasks.vgae import vgae_settings

CONF = files("svae_bench.conf")
RESULTS = Path(__file__).resolve().parents[1] / "results"


@pytest.fixture(scope="module")
def hydra_compose():
    GlobalHydra.instance().clear()
    with initialize_config_module(config_module="svae_bench.conf", version_base="1.3"):
        yield lambda *overrides: compose(config_name="config", overrides=list(overrides), return_hydra_config=True)
    GlobalHydra.instance().clear()


def plain(node):
    return OmegaConf.to_container(node, resolve=True)


def run_values(cfg) -> dict:
    """A composed config's resolved values without Hydra's node (what a task receives)."""
    return resolved(cfg, exclude=("hydra",))


def test_the_yaml_holds_the_schema_defaults():
    """conf/trainer/default.yaml, conf/eval/default.yaml and the top level of conf/config.yaml
    document the schema's defaults: the same keys, the same values, the same types."""
    for group, schema in (("trainer", TrainerConfig), ("eval", EvalConfig)):
        yaml = plain(OmegaConf.load(CONF / group / "default.yaml"))
        assert yaml == defaults(schema), group
        assert {k: type(v) for k, v in yaml.items()} == {k: type(v) for k, v in defaults(schema).items()}, group
    top = plain(OmegaConf.load(CONF / "config.yaml"))
    assert {k: top[k] for k in defaults(RunConfig)} == defaults(RunConfig)
    assert set(GROUPS) == {"", "trainer", "eval"}


def _options():
    for group in sorted(p.name for p in CONF.iterdir() if p.is_dir() and not p.name.startswith(("_", "hydra"))):
        for option in sorted(f.name[:-5] for f in (CONF / group).iterdir() if f.name.endswith(".yaml")):
            yield group, option


def _set_by(choices) -> dict[str, dict]:
    """The trainer and eval values the chosen options' files set (the only files besides the
    groups' own default.yaml that may change them: the budgets, the experiments)."""
    out: dict[str, dict] = {"trainer": {}, "eval": {}}
    for group, option in choices.items():
        if option is None or group in ("trainer", "eval") or group.startswith("hydra"):
            continue
        path = CONF / group / f"{option}.yaml"
        if not path.is_file():
            continue
        text = path.read_text()
        raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
        if "@package _global_" not in text:
            continue  # a group's own package: it cannot set trainer.* or eval.*
        for name in out:
            out[name].update(raw.get(name) or {})
    return out


@pytest.mark.parametrize("group,option", list(_options()))
def test_every_config_group_option_gives_the_tasks_the_schema_defaults(hydra_compose, group, option):
    """Composed with each option of each group, the trainer and eval values the tasks read (the
    typed groups, the loop's settings) are the schema's defaults, except for the keys that the
    chosen options' files set: no other default (a fallback, a dataclass default) can take effect."""
    override = {
        "variant": f"+variant={option}",
        "semisup": f"+semisup={option}",
        "vgae": f"+vgae={option}",
        "family": f"+family={option}",
    }.get(group, f"{group}={option}")
    cfg = hydra_compose(override)
    set_by = _set_by(cfg.hydra.runtime.choices)
    for name, schema in (("trainer", TrainerConfig), ("eval", EvalConfig)):
        received = typed(schema, plain(cfg[name]), f"{name}.").__dict__
        unset = {k: v for k, v in received.items() if k not in set_by[name]}
        assert unset == {k: v for k, v in defaults(schema).items() if k not in set_by[name]}, name
        for key in set_by[name]:
            assert received[key] == plain(cfg[name])[key]
    settings = trainer_settings(typed(TrainerConfig, plain(cfg.trainer)))
    expected = {**defaults(TrainerConfig), **plain(cfg.trainer)}
    for key in ("lr", "batch_size", "max_epochs", "patience", "progress", "nan_retries", "nan_lr_factor", "fused"):
        assert getattr(settings, key) == expected[key], key


def test_nan_lr_factor_and_fused_are_the_documented_values_in_every_task(hydra_compose):
    """0.5 and true: the trainer group's values reach the VAE task, M2 (through semisup.trainer's
    interpolation of nan_lr_factor) and the VGAE; an override reaches each of them too."""
    for overrides in ([], ["experiment=table1", "budget=laptop"]):
        vae = trainer_settings(typed(TrainerConfig, run_values(hydra_compose(*overrides).trainer)))
        assert (vae.nan_lr_factor, vae.fused, vae.compile) == (0.5, True, False)
    m1m2 = run_values(hydra_compose("experiment=table3", "budget=laptop"))
    assert (m2_settings(m1m2).nan_lr_factor, m2_settings(m1m2).fused, m2_settings(m1m2).lr) == (0.5, True, 3e-3)
    vgae = run_values(hydra_compose("experiment=table4"))
    settings = vgae_settings(vgae["trainer"], vgae["vgae"])
    assert (settings.nan_lr_factor, settings.fused, settings.lr, settings.batch_size) == (0.5, True, 0.01, 1)
    changed = ("trainer.nan_lr_factor=0.25", "trainer.fused=false", "trainer.compile=true")
    m1m2 = run_values(hydra_compose("experiment=table3", "budget=laptop", *changed))
    vgae = run_values(hydra_compose("experiment=table4", *changed))
    for settings in (m2_settings(m1m2), vgae_settings(vgae["trainer"], vgae["vgae"])):
        assert (settings.nan_lr_factor, settings.fused, settings.compile) == (0.25, False, True)


def test_the_vgae_check_covers_compile_and_fused(hydra_compose):
    for key in ("compile", "fused"):
        values = run_values(hydra_compose("experiment=table4", f"trainer.{key}=maybe"))
        with pytest.raises(ConfigError, match=rf"^trainer\.{key}='maybe' must be true or false$"):
            get_task("vgae").check(values)


@pytest.mark.parametrize(
    "overrides",
    [
        [],
        ["model=nvae", "latent_dim=5", "beta=0.1", "seed=3"],
        ["experiment=table1", "budget=laptop", "latent_dim=10", "beta=1.0"],
        ["experiment=table4", "model=nvgae", "dataset=citeseer", "seed=2"],
    ],
)
def test_hydra_names_the_run_directory_with_the_run_dir_function(hydra_compose, overrides):
    cfg = hydra_compose(*overrides)
    v = run_values(cfg)
    subdir = run_subdir(
        v["experiment_name"], v["dataset"]["name"], v["model"]["name"], v["latent_dim"], v["beta"], v["seed"]
    )
    assert cfg.hydra.run.dir == f"{v['runs_root']}/{subdir}"
    assert cfg.hydra.sweep.subdir == subdir


@pytest.mark.parametrize("family,z1,seed", [("N+N", 5, 0), ("S+N", 10, 1), ("S+S", 50, 2)])
def test_an_m1m2_cell_finds_its_m1_where_hydra_puts_the_table1_run(hydra_compose, family, z1, seed):
    """The M1 a Table 3 cell reuses is the directory Hydra gives the Table 1 run of its model, d =
    z1, seed and budget: if conf/hydra/default.yaml's layout changed, both would follow."""
    cell = run_values(
        hydra_compose("experiment=table3", "budget=laptop", f"family={family}", f"latent_dim={z1}", f"seed={seed}")
    )
    model = cell["model"]["name"]
    table1 = hydra_compose("experiment=table1", "budget=laptop", f"model={model}", f"latent_dim={z1}", f"seed={seed}")
    assert m1_dir(cell) == Path(table1.hydra.run.dir)
    assert get_task("m1m2").dependencies(cell) == [m1_dir(cell)]


def test_a_missing_key_is_a_one_line_error_not_a_fallback(hydra_compose):
    values = run_values(hydra_compose())
    del values["trainer"]["fused"]
    with pytest.raises(ConfigError, match=r"^trainer\.fused is missing \(the trainer config has no value\)$"):
        get_task("vae").check(values)
    with pytest.raises(ConfigError, match=r"^trainer\.nan_lr_factor=2 must be a number > 0 and <= 1$"):
        typed(TrainerConfig, {**defaults(TrainerConfig), "nan_lr_factor": 2}, "trainer.")


OLD_CONFIG = {  # a record's config from before nan_retries, compile, fused, flush_denormal and latent_plot
    "experiment_name": "table1_laptop",
    "latent_dim": 2,
    "beta": 1.0,
    "seed": 0,
    "runs_root": "runs",
    "force": False,
    "device": "cpu",
    "dataset": {"name": "mnist", "data_root": None, "n_val": 10000, "split_seed": 0, "binarize_seed": 0},
    "model": {"name": "svae", "latent": "vmf", "hidden_dims": [256, 128], "activation": "relu"},
    "trainer": {
        "optimizer": "adam",
        "lr": 0.001,
        "batch_size": 64,
        "max_epochs": 20,
        "patience": 5,
        "warmup_epochs": 4,
        "num_threads": 1,
        "progress": "auto",
    },
    "eval": {"is_samples": 500, "is_batch_points": 100, "knn_labels": [100], "knn_neighbors": 5, "knn_repeats": 10},
}


def test_migrate_config_says_what_an_old_record_ran_with():
    with pytest.raises(ConfigError, match=r"^trainer\.nan_retries is missing"):
        typed(TrainerConfig, OLD_CONFIG["trainer"], "trainer.")
    migrated = migrate_config(OLD_CONFIG)
    trainer = typed(TrainerConfig, migrated["trainer"], "trainer.")
    assert (trainer.fused, trainer.flush_denormal, trainer.compile, trainer.nan_retries) == (False, False, False, 0)
    assert trainer.num_threads == 1 and trainer.lr == 0.001  # recorded values stay
    assert migrated["eval"] == {**OLD_CONFIG["eval"], "latent_plot": True}  # evaluation keys: today's defaults
    assert set(TRAINER_BEFORE_KEY) <= set(migrated["trainer"])
    assert "fused" not in OLD_CONFIG["trainer"]  # the record's own dict is left as it was
    get_task("vae").check(migrated)  # an old record passes today's check once migrated
    today = {**OLD_CONFIG, "trainer": defaults(TrainerConfig), "eval": defaults(EvalConfig)}
    assert migrate_config(today) == today


def test_every_committed_record_config_migrates_to_a_config_today_s_check_accepts():
    configs = [json.loads(p.read_text()).get("config") for p in sorted(RESULTS.rglob("result.json"))]
    configs = [c for c in configs if isinstance(c, dict) and c.get("task", "vae") == "vae"]
    assert configs
    for config in configs:
        migrated = migrate_config(config)
        typed(TrainerConfig, migrated["trainer"], "trainer.")
        typed(EvalConfig, migrated["eval"], "eval.")
