"""The README's commands work as written: every ``svae-bench ...`` and ``make ...`` command in its
shell code blocks is checked, and so are its links into docs/ and results/.

Nothing is trained, downloaded or written. Each ``svae-bench`` command is checked in the form that
parses it without running it:

* ``run`` without ``-m``: Hydra's ``--cfg job`` (the preflight's name checks, then Hydra composes
  and prints the config; an unknown key or option fails);
* every ``run`` (sweeps too): ``status`` with the same overrides, which expands every job of the
  sweep exactly as ``run -m`` does and checks each job's values as the run preflight does (data
  files and a writable runs root apart);
* ``status``: itself, in an empty directory (it only reads);
* ``tables``, ``figures``, ``evaluate``, ``data``: their own argument parsers, plus what their
  ``main`` checks before doing anything (the data set's name, ``evaluate``'s overrides, the
  figure's format); and ``<command> --help``.

``make`` targets are checked with ``make -n``. All ``svae-bench`` checks run in one subprocess
(``python -m svae_bench``'s code, from this checkout's ``src/``), so the test takes seconds, not a
Python start per command. A command that does not parse fails the test, which
:func:`test_the_checker_refuses_commands_that_do_not_parse` checks on purpose-built bad ones.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

SHELL_BLOCK = re.compile(r"^```(?:bash|sh|shell|console)\n(.*?)^```", re.S | re.M)
SEPARATORS = {";", "&&", "||", "|", "&"}

#: runs in a subprocess; argv[1]: a JSON list of [kind, argv]; argv[2]: where to write the results
DRIVER = r"""
import contextlib, io, json, sys

from svae_bench.cli import main
from svae_bench.commands import COMMANDS, load
from svae_bench.commands._args import parse_args


def parsed(command, args):
    module = load(command)
    ns = parse_args(module._parser(), args)
    if isinstance(ns, int):  # --help (0) or an argparse usage error (2)
        return ns
    if command == "data" and ns.dataset not in ("mnist", "planetoid"):  # what data.main refuses first
        print(f"error: unknown dataset {ns.dataset!r}", file=sys.stderr)
        return 2
    if command == "evaluate":
        from svae_bench.tasks.reevaluate import parse_overrides

        parse_overrides([w for w in ns.words if module._is_override(w)])
    if command == "figures" and ns.out is not None:
        from svae_bench.plots import image_format

        image_format(ns.out)
    return 0


checks, out_path, own_argv = json.loads(sys.argv[1]), sys.argv[2], list(sys.argv)
results = []
for kind, argv in checks:
    sys.argv = list(own_argv)  # `run` sets sys.argv for Hydra
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            if kind == "parse":
                rc = parsed(argv[0], argv[1:]) if argv and argv[0] in COMMANDS else main(argv)
            else:
                rc = main(argv)
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except Exception as exc:  # a parser or Hydra error that the command would have raised
        rc, err = 1, io.StringIO(f"{type(exc).__name__}: {exc}")
    results.append({"kind": kind, "argv": argv, "rc": rc, "stderr": err.getvalue()[-2000:]})
with open(out_path, "w") as f:
    json.dump(results, f)
"""


def shell_commands(markdown: str) -> list[list[str]]:
    """The commands of the Markdown's shell code blocks, one argv each (comments dropped,
    continuation lines joined, ``a; b`` and ``a && b`` split)."""
    commands = []
    for block in SHELL_BLOCK.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|")
            lexer.whitespace_split = True
            lexer.commenters = "#"
            current: list[str] = []
            for token in lexer:
                if token in SEPARATORS:
                    commands.append(current)
                    current = []
                else:
                    current.append(token)
            commands.append(current)
    return [c for c in commands if c]


PRINTING = {"--cfg", "-c", "--help", "-h", "--hydra-help", "--info", "-i"}


def checks_for(command: list[str]) -> list[tuple[str, list[str]]]:
    """What the driver runs to check one ``svae-bench`` command: (kind, argv) pairs."""
    argv = command[1:]
    if not argv or argv[0] not in ("run", "status"):
        return [("parse", argv)] + ([("help", [argv[0], "--help"])] if argv and not argv[0].startswith("-") else [])
    if argv[0] == "status":
        return [("status", argv)]
    args = argv[1:]
    if PRINTING & set(args):
        return [("cfg", argv)]
    checks = [("status", ["status", *[a for a in args if a not in ("-m", "--multirun")]])]
    if "-m" not in args and "--multirun" not in args:
        checks.insert(0, ("cfg", [*argv, "--cfg", "job"]))
    return checks


def svae_bench_commands(commands: list[list[str]]) -> list[list[str]]:
    return [c for c in commands if Path(c[0]).name == "svae-bench"]


def run_driver(checks: list[tuple[str, list[str]]], cwd: Path) -> list[dict]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])])
    env.pop("SVAE_BENCH_DEBUG", None)  # the preflight must run, as for a user
    out = cwd / "results.json"
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, json.dumps(checks), str(out)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0 and out.exists(), done.stderr[-3000:]
    results = json.loads(out.read_text())
    out.unlink()
    return results


def make_targets(commands: list[list[str]]) -> list[str]:
    targets = []
    for command in commands:
        if command[0] == "make":
            targets += [a for a in command[1:] if not a.startswith("-") and "=" not in a]
    return targets


def make_dry_run(target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-n", "--no-print-directory", "-C", str(REPO), target], capture_output=True, text=True, timeout=60
    )


@pytest.fixture(scope="module")
def readme_commands() -> list[list[str]]:
    commands = shell_commands(README.read_text(encoding="utf-8"))
    assert commands, "no shell code blocks in README.md"
    return commands


def test_readme_test_command_is_make_test(readme_commands):
    """CI runs `make test` (.ci/run); the README must give that command for the tests."""
    assert ["make", "test"] in readme_commands


def test_readme_svae_bench_commands_parse(readme_commands, tmp_path):
    checks = [check for command in svae_bench_commands(readme_commands) for check in checks_for(command)]
    assert {"cfg", "status", "parse"} <= {kind for kind, _ in checks}
    results = run_driver(checks, tmp_path)
    failed = [
        f"svae-bench {' '.join(r['argv'])} ({r['kind']}): exit {r['rc']}\n{r['stderr']}" for r in results if r["rc"]
    ]
    assert not failed, "README commands that do not parse:\n" + "\n".join(failed)
    assert not list(tmp_path.iterdir()), "checking the README's commands wrote files"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_readme_make_targets_exist(readme_commands):
    targets = make_targets(readme_commands)
    assert "test" in targets
    missing = {}
    for target in targets:
        done = make_dry_run(target)
        if done.returncode:
            missing[target] = done.stderr.strip()
    assert not missing, f"README names make targets the Makefile lacks: {missing}"


def test_the_checker_refuses_commands_that_do_not_parse(tmp_path):
    """The same checks on commands that must fail: each one fails at least one of its checks."""
    bad = shell_commands(
        "```bash\n"
        "svae-bench run model=svea                      # an unknown option\n"
        "svae-bench run latent_dims=3                   # an unknown key\n"
        "svae-bench run -m model=nvae,svae beta=-1      # a value every job refuses\n"
        "svae-bench status experiment=table9\n"
        "svae-bench tables --runs runs                  # --out is required\n"
        "svae-bench figures --out figure.xyz\n"
        "svae-bench evaluate runs/x trainer.lr=3\n"
        "svae-bench data cifar\n"
        "svae-bench frobnicate\n"
        "```\n"
    )
    assert len(bad) == 9
    per_command = [checks_for(command) for command in bad]
    results = iter(run_driver([check for checks in per_command for check in checks], tmp_path))
    codes = [[next(results)["rc"] for _ in checks] for checks in per_command]
    passed = [" ".join(command) for command, rcs in zip(bad, codes) if not any(rcs)]
    assert not passed, f"bad commands the checker let through: {passed}"


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_the_checker_refuses_a_missing_make_target():
    assert make_dry_run("no-such-target").returncode != 0


def _slug(heading: str) -> str:
    """The anchor mkdocs (Python-Markdown's toc) and GitHub give a heading (for the headings here)."""
    text = unicodedata.normalize("NFKD", re.sub(r"[`*]", "", heading)).encode("ascii", "ignore").decode()
    return re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", text).strip().lower())


def test_readme_links_resolve():
    """Every relative link of the README names a file or folder of the repository, and an anchor
    into a Markdown file names one of its headings."""
    text = README.read_text(encoding="utf-8")
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        file = REPO / path
        if not file.exists():
            broken.append(target)
        elif anchor:
            headings = re.findall(r"^#{1,6} (.+)$", file.read_text(encoding="utf-8"), re.M)
            if anchor not in {_slug(h) for h in headings}:
                broken.append(target)
    assert not broken, f"README links to nothing: {broken}"
