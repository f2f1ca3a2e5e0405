#!/usr/bin/env python
"""Mutation testing for svae_bench: a fixed catalogue of plausible bugs, one at a time.

Why not mutmut or cosmic-ray: both generate every mutant their operators allow (hundreds for
these modules) and run the tests once per mutant; mutmut 3 also runs the whole suite once to
map tests to functions. With test files that take 5-60 s each on this project's 2 shared
cores, that is hours. Instead this script applies a hand-written list of mutants, each a bug
someone could plausibly write (a flipped comparison or sign, an off-by-one, a dropped term,
logsumexp replaced by a mean, a generator not restored, ...), and runs only the test files
relevant to the mutated module, stopping at the first failure.

How it runs:

1. copies src/svae_bench (with conf/ inside it as svae_bench/conf, so Hydra's
   pkg://svae_bench.conf resolves inside the copy) to a scratch directory, and checks that
   ``import svae_bench`` with PYTHONPATH=<copy> really picks up the copy;
2. runs the union of the relevant test files once on the unmutated copy (a mutant only
   counts as killed against a green baseline);
3. for each mutant: replaces exactly one occurrence of ``old`` by ``new`` in the copy, runs
   ``python -m pytest -x -q -p no:cacheprovider <files>`` in the repository root (so
   pyproject's pytest settings apply) with PYTHONPATH=<copy> and a timeout, records
   killed / survived / timeout, and restores the file.

The working tree is never modified. Usage:

    python scripts/mutation.py                  # everything; writes results/mutation/report.md
    python scripts/mutation.py --list           # the catalogue
    python scripts/mutation.py --check          # does every mutant still apply? (no test run, ~1 s)
    python scripts/mutation.py --only ID [ID]   # some mutants (e.g. to check a new test kills one)
    python scripts/mutation.py --module training/loop.py

Mutated modules (paths relative to src/svae_bench; before the layered package of 8f655c7..4daed48
they were evaluate.py, train.py, checkpoint.py, records.py and run.py): distributions/*,
tasks/vae_metrics.py, training/loop.py, training/state.py, tasks/vae_objective.py (the warm-up and
the validation objective, in training/loop.py before issue 13), records/record.py, records/atomic.py,
tasks/harness.py (run_one's skip decision). After a source change (or a reformat), run ``--check``
first: a mutant whose ``old`` text no longer matches is reported there, and in a run as "stale".

Exit status: 0 when every mutant was run against a green baseline (survivors are reported,
not failures), 1 if a baseline failed or a mutant's ``old`` text is missing (the catalogue
needs updating after a source change), 2 on bad arguments. With ``--check``: 0 if every chosen
mutant applies and every test named in GROUPS exists, else 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PKG = "src/svae_bench"

#: the catalogue: test groups and mutants, as data (scripts/mutants.toml says how to add one)
CATALOGUE = ROOT / "scripts" / "mutants.toml"


@dataclass
class Mutant:
    id: str
    file: str  # relative to src/svae_bench
    old: str  # must occur exactly once in the file
    new: str
    what: str  # the bug, in words
    group: str  # key of GROUPS
    count: int = 1  # how many occurrences of ``old`` there are; all of them are replaced


def load_catalogue(path: Path = CATALOGUE) -> tuple[dict[str, list[str]], list[Mutant]]:
    """(groups, mutants) from the TOML catalogue; ValueError naming the entry for a malformed one."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)
    groups = data.get("groups", {})
    if not isinstance(groups, dict) or not all(isinstance(v, list) for v in groups.values()):
        raise ValueError(f"{path}: [groups] must map names to lists of tests")
    mutants = []
    for i, entry in enumerate(data.get("mutant", [])):
        try:
            mutants.append(Mutant(**entry))
        except TypeError as err:
            raise ValueError(f"{path}: mutant #{i + 1} ({entry.get('id', '?')}): {err}") from None
    return groups, mutants


GROUPS, MUTANTS = load_catalogue()


@dataclass
class Outcome:
    id: str
    file: str
    what: str
    status: str  # killed | survived | timeout | error
    seconds: float
    detail: str
    group: str = ""  # the catalogue's test group


def copy_tree(dest: Path, rev: str | None) -> Path:
    """src/svae_bench and conf/ (as svae_bench/conf) under dest/src, from the working tree or from
    the git revision ``rev``; returns dest/src."""
    src = dest / "src"
    if rev is None:
        shutil.copytree(ROOT / PKG, src / "svae_bench", ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copytree(ROOT / "conf", src / "svae_bench" / "conf", ignore=shutil.ignore_patterns("__pycache__"))
        return src
    export = dest / "export"
    export.mkdir()
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, PKG, "conf"], cwd=ROOT, capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(export)], input=archive, check=True)
    shutil.copytree(export / PKG, src / "svae_bench")
    shutil.copytree(export / "conf", src / "svae_bench" / "conf")
    return src


def env_for(src: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(src) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # no stale .pyc of a mutant in the copy
    return env


def check_import(src: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import svae_bench, svae_bench.conf, svae_bench.tasks.vae_metrics as e;"
            "print(svae_bench.__file__); print(svae_bench.conf.__file__); print(e.__file__)",
        ],
        env=env_for(src),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    paths = out.stdout.split()
    if out.returncode != 0 or len(paths) != 3 or not all(Path(p).is_relative_to(src) for p in paths):
        raise SystemExit(f"the copy is not what gets imported: {out.stdout} {out.stderr[-2000:]}")


def run_tests(files: list[str], src: Path, timeout: float, stop_at_first: bool = True) -> tuple[str, float, str]:
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        *(["-x"] if stop_at_first else []),
        "-q",
        "-p",
        "no:cacheprovider",
        "--no-header",
        "-W",
        "ignore",
        *files,
    ]
    t0 = time.monotonic()
    try:
        out = subprocess.run(cmd, env=env_for(src), cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "timeout", time.monotonic() - t0, f"no result within {timeout:.0f} s"
    seconds = time.monotonic() - t0
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    failed = [ln.split(" ", 1)[1].split(" - ")[0] for ln in lines if ln.startswith(("FAILED ", "ERROR "))]
    summary = lines[-1] if lines else out.stderr.strip()[-300:]
    if out.returncode == 0:
        return "survived", seconds, summary
    if out.returncode == 1:
        return "killed", seconds, (failed[0] if failed else summary)
    return "error", seconds, f"pytest exit {out.returncode}: {(failed[0] if failed else summary)}"


def apply(src: Path, mutant: Mutant) -> str:
    """Write the mutant into the copy; returns the original text to restore."""
    path = src / "svae_bench" / mutant.file
    text = path.read_text()
    count = text.count(mutant.old)
    if count != mutant.count:
        raise LookupError(
            f"{mutant.id}: the text to mutate occurs {count} times in {mutant.file}, expected {mutant.count}"
        )
    path.write_text(text.replace(mutant.old, mutant.new))
    return text


def source_text(file: str, rev: str | None) -> str | None:
    """The text of src/svae_bench/<file> in the working tree or at ``rev``; None if it does not exist."""
    if rev is None:
        path = ROOT / PKG / file
        return path.read_text() if path.is_file() else None
    out = subprocess.run(["git", "show", f"{rev}:{PKG}/{file}"], cwd=ROOT, capture_output=True, text=True)
    return out.stdout if out.returncode == 0 else None


def check_catalogue(mutants: list[Mutant], rev: str | None) -> list[str]:
    """What is wrong with the catalogue against the current source, without running a test: a file
    that is gone, an ``old`` text that does not occur exactly ``count`` times, a mutant that changes
    nothing or does not compile, an unknown group, a test file or test function that is gone."""
    problems = []
    for m in mutants:
        text = source_text(m.file, rev)
        if text is None:
            problems.append(f"{m.id}: {m.file} does not exist")
            continue
        found = text.count(m.old)
        if found != m.count:
            problems.append(f"{m.id}: the text to mutate occurs {found} times in {m.file}, expected {m.count}")
            continue
        if m.old == m.new:
            problems.append(f"{m.id}: old and new are the same")
        try:
            compile(text.replace(m.old, m.new), m.file, "exec")
        except SyntaxError as err:
            problems.append(f"{m.id}: the mutated {m.file} does not compile ({err.msg}, line {err.lineno})")
        if m.group not in GROUPS:
            problems.append(f"{m.id}: unknown test group {m.group!r}")
    for group, tests in GROUPS.items():
        for test in tests:
            file, _, node = test.partition("::")
            path = ROOT / file
            if not path.is_file():
                problems.append(f"group {group}: {file} does not exist")
            elif node and f"def {node.split('[')[0]}(" not in path.read_text():
                problems.append(f"group {group}: no test {node.split('[')[0]} in {file}")
    return problems


def source_version(rev: str | None) -> str:
    """The commit the mutated package comes from ('+ uncommitted changes' for a dirty working tree)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", rev or "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        if rev is not None:
            return head
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", PKG, "conf"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        return head + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_report(
    out_dir: Path, outcomes: list[Outcome], baseline: dict, command: str, started: str, wall: float, version: str
) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(
        json.dumps(
            {
                "command": command,
                "source": version,
                "started": started,
                "wall_seconds": round(wall, 1),
                "baseline": baseline,
                "python": platform.python_version(),
                "outcomes": [asdict(o) for o in outcomes],
            },
            indent=2,
        )
        + "\n"
    )
    stale = [o for o in outcomes if o.status == "stale"]
    outcomes = [o for o in outcomes if o.status != "stale"]
    killed_all = sum(o.status in ("killed", "timeout", "error") for o in outcomes)
    lines = [
        "# Mutation testing: svae_bench",
        "",
        f"Command: `{command}` (from the repository root; started {started}, {wall / 60:.1f} min of wall time, "
        f"{os.cpu_count()} CPU cores shared with other work). Package mutated: src/svae_bench at {version}.",
        "",
        "Tool: `scripts/mutation.py`, a fixed catalogue of hand-written mutants applied one at a time to a copy of "
        "`src/svae_bench`; each mutant runs only the test files relevant to its module (`pytest -x`, default tier, "
        "slow tests excluded). Killed = a test failed (or timed out / errored); survived = all passed.",
        "",
        f"**Score: {killed_all}/{len(outcomes)} killed.**",
        "",
        "| module | killed | total |",
        "|---|---:|---:|",
    ]
    for file, (killed, total) in tally(outcomes, "file").items():
        lines.append(f"| {file} | {killed} | {total} |")
    lines += [
        "",
        "By test group (scripts/mutants.toml's [groups]):",
        "",
        "| group | killed | total |",
        "|---|---:|---:|",
    ]
    for name, (killed, total) in tally(outcomes, "group").items():
        lines.append(f"| {name} | {killed} | {total} |")
    lines += [
        "",
        "## Every mutant",
        "",
        "| id | module | bug | result | s | first failing test / summary |",
        "|---|---|---|---|---:|---|",
    ]
    for o in outcomes:
        lines.append(f"| {o.id} | {o.file} | {o.what} | {o.status} | {o.seconds:.0f} | {o.detail.replace('|', '/')} |")
    survivors = [o for o in outcomes if o.status == "survived"]
    lines += ["", "## Survivors", ""]
    lines += [f"- `{o.id}` ({o.file}): {o.what}" for o in survivors] or ["none"]
    if stale:
        lines += ["", "## Not run (catalogue out of date)", ""] + [f"- `{o.id}`: {o.detail}" for o in stale]
    lines += ["", "## Baseline (unmutated copy)", ""]
    lines += [f"- {group}: {res}" for group, res in baseline.items()]
    (out_dir / "report.md").write_text("\n".join(lines) + "\n")


def tally(outcomes: list[Outcome], key: str) -> dict[str, tuple[int, int]]:
    """(killed, total) per value of the outcomes' ``key`` ("file" or "group"), in first-seen order;
    stale mutants (not run) are left out, a timeout or an error counts as killed."""
    counts: dict[str, list[int]] = {}
    for o in outcomes:
        if o.status != "stale":
            c = counts.setdefault(getattr(o, key), [0, 0])
            c[0] += o.status != "survived"
            c[1] += 1
    return {k: (killed, total) for k, (killed, total) in counts.items()}


def of_module(file: str, wanted: str) -> bool:
    """Is ``file`` (relative to src/svae_bench) the file or inside the folder ``wanted``?"""
    wanted = wanted.strip("/")
    return file == wanted or file.endswith("/" + wanted) or file.startswith(wanted + "/")


def run_mutant(m: Mutant, src: Path, tests: list[str], timeout: float) -> Outcome:
    """One mutant in the copy ``src`` (restored afterwards); 'stale' when its text is missing."""
    try:
        original = apply(src, m)
    except LookupError as err:
        return Outcome(m.id, m.file, m.what, "stale", 0.0, str(err), m.group)
    try:
        status, seconds, detail = run_tests(tests, src, timeout)
    finally:
        (src / "svae_bench" / m.file).write_text(original)
    return Outcome(m.id, m.file, m.what, status, seconds, detail, m.group)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", metavar="ID", help="run only these mutants")
    parser.add_argument(
        "--module",
        nargs="+",
        metavar="PATH",
        help="run only mutants of these files or folders (e.g. training/loop.py, loop.py, tasks/, report)",
    )
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="mutants run at once, each in its own copy of the package (default 1; 2 on 2 free cores)",
    )
    parser.add_argument("--list", action="store_true", help="print the catalogue and exit")
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the catalogue against the source (each old text found exactly as often as expected, "
        "each mutant compiles, every test file and test exists); runs no test; exit 0 if all is well, else 1",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per test run (default 600)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where report.md and results.json go (default results/mutation/ for a full run; "
        "none for --only/--module unless given)",
    )
    parser.add_argument(
        "--rev",
        help="mutate the package as committed at this git revision (e.g. HEAD) "
        "instead of the working tree (the tests always come from the working tree)",
    )
    parser.add_argument(
        "--tests",
        nargs="+",
        metavar="PYTEST_ARG",
        help="run these test files / node ids for every chosen mutant instead of its module's group",
    )
    parser.add_argument("--no-baseline", action="store_true", help="skip the green-baseline runs (faster re-checks)")
    parser.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        help="another catalogue file in the same format (default scripts/mutants.toml), e.g. a draft of new mutants",
    )
    args = parser.parse_args(argv)
    global GROUPS, MUTANTS
    if args.catalogue is not None:
        try:
            GROUPS, MUTANTS = load_catalogue(args.catalogue)
        except (OSError, ValueError, tomllib.TOMLDecodeError) as err:
            parser.error(f"--catalogue {args.catalogue}: {err}")

    ids = [m.id for m in MUTANTS]
    assert len(ids) == len(set(ids)), "duplicate mutant ids"
    chosen = MUTANTS
    if args.only:
        unknown = sorted(set(args.only) - set(ids))
        if unknown:
            parser.error(f"unknown mutant ids: {', '.join(unknown)} (see --list)")
        chosen = [m for m in MUTANTS if m.id in args.only]
    if args.jobs < 1:
        parser.error(f"--jobs must be at least 1, got {args.jobs}")
    if args.module:
        unmatched = [w for w in args.module if not any(of_module(m.file, w) for m in chosen)]
        if unmatched:
            parser.error(f"no mutant of {', '.join(map(repr, unmatched))}")
        chosen = [m for m in chosen if any(of_module(m.file, w) for w in args.module)]
    if args.check:
        problems = check_catalogue(chosen, args.rev)
        for problem in problems:
            print(problem, file=sys.stderr)
        where = f"src/svae_bench at {args.rev}" if args.rev else "the working tree's src/svae_bench"
        print(
            f"{len(chosen) - len({p.split(':')[0] for p in problems if not p.startswith('group ')})}/{len(chosen)} "
            f"mutants apply to {where}; {len(problems)} problem(s)"
        )
        return 1 if problems else 0
    if args.list:
        for m in chosen:
            print(f"{m.id:34s} {m.file:36s} {m.what}  [{m.group}]")
        return 0
    out_dir = (
        args.out
        if args.out is not None
        else (ROOT / "results" / "mutation" if not (args.only or args.module) else None)
    )
    command = "python scripts/mutation.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip()
    started = time.strftime("%Y-%m-%d %H:%M:%S")
    t_start = time.monotonic()
    version = source_version(args.rev)
    outcomes: list[Outcome] = []
    baseline: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="svae-mutation-") as tmp:
        # one copy of the package per worker: a mutant is written into its worker's copy only
        copies = [copy_tree(Path(tmp) / f"w{w}", args.rev) for w in range(args.jobs)]
        for src in copies:
            check_import(src)
        print(
            f"copies of the package: {', '.join(str(c / 'svae_bench') for c in copies)} (imported from there)",
            flush=True,
        )
        ok = True
        if not args.no_baseline:
            # one run over the union of the chosen groups' tests (each file once), in --jobs parts
            union = args.tests or list(dict.fromkeys(t for m in chosen for t in GROUPS[m.group]))
            union = [t for t in union if "::" not in t or t.split("::")[0] not in union]
            parts = [union[w :: args.jobs] for w in range(args.jobs) if union[w :: args.jobs]]
            with ThreadPoolExecutor(len(parts)) as pool:
                results = list(
                    pool.map(
                        lambda wp: run_tests(wp[1], copies[wp[0]], args.timeout * 3, stop_at_first=False),
                        enumerate(parts),
                    )
                )
            green = all(status == "survived" for status, _, _ in results)
            baseline["all relevant tests"] = (
                f"{'green' if green else 'NOT GREEN'} in {max(sec for _, sec, _ in results):.0f} s "
                f"({'; '.join(detail for _, _, detail in results)}): {' '.join(union)}"
            )
            print(f"baseline: {baseline['all relevant tests']}", flush=True)
            ok &= green
            if not ok:
                print("a baseline is not green: mutants would be counted as killed for nothing", file=sys.stderr)
                return 1
        free: queue.Queue[Path] = queue.Queue()
        for src in copies:
            free.put(src)
        done = 0
        lock = threading.Lock()

        def work(m: Mutant) -> Outcome:
            nonlocal done
            src = free.get()
            try:
                outcome = run_mutant(m, src, args.tests or GROUPS[m.group], args.timeout)
            finally:
                free.put(src)
            with lock:
                done += 1
                print(
                    f"[{done}/{len(chosen)}] {outcome.status:8s} {outcome.seconds:6.0f}s  {m.id}: {outcome.detail}",
                    flush=True,
                )
            return outcome

        with ThreadPoolExecutor(args.jobs) as pool:
            outcomes = list(pool.map(work, chosen))  # in catalogue order
        ok &= all(o.status != "stale" for o in outcomes)
    wall = time.monotonic() - t_start
    print(f"\nmutation score ({wall / 60:.1f} min):")
    for file, (killed, total) in tally(outcomes, "file").items():
        print(f"  {file:36s} {killed}/{total} killed")
    survivors = [o for o in outcomes if o.status == "survived"]
    for o in survivors:
        print(f"  survived: {o.id} ({o.file}): {o.what}")
    if out_dir is not None:
        write_report(out_dir, outcomes, baseline, command, started, wall, version)
        print(f"report: {out_dir / 'report.md'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
