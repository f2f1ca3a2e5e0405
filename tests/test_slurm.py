"""The SLURM path on a real cluster: `pytest -m slurm` (`make test-slurm`), about 6-8 minutes on 2 cores.

A session fixture starts a one-node SLURM cluster on this machine with scripts/local_slurm.sh
(munged, mariadbd, slurmdbd, slurmctld, slurmd; it installs slurm-wlm, munge, slurmdbd and
mariadb-server when they are missing and it runs as root) and stops exactly those daemons at the
end. The tests SKIP only when the script says the packages cannot be installed (its exit status 3);
daemons that fail to start FAIL them, with the daemon's log tail. Every sweep goes through the
shipped `hydra/launcher=slurm` config (conf/hydra/launcher/slurm.yaml) and a wrapper of `sbatch`
that records each submission; runs are compared with the same runs made by the basic launcher
(`svae-bench run` without a launcher, in another runs root), run beside them: training
is deterministic on CPU, so the metrics must be equal.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "local_slurm.sh"
PARTITION = "local"  # the script's partition
CELL = Path("default/synthetic/svae/d=2/beta=1")  # run directories below a runs root: CELL / seed=<s>
# what every run here shares: cheap evaluation, one thread, no progress bar
SMALL = ["trainer.progress=false", "trainer.num_threads=1", "eval.is_samples=10", "eval.knn_repeats=1"]
NOT_FINAL = ("PENDING", "RUNNING", "REQUEUED", "COMPLETING", "CONFIGURING", "RESIZING", "SUSPENDED")
EPOCH_LINE = re.compile(r" - epoch \d+ .* (\d+(?:\.\d+)?)s(?:  \*best)?$")


@dataclass
class Cluster:
    directory: Path
    env: dict
    sbatch_log: Path
    node: str

    def run(self, args: list[str], check: bool = True, timeout: float = 60) -> str:
        out = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and out.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed ({out.returncode}): {out.stderr.strip()}")
        return out.stdout

    def submissions(self) -> list[str]:
        """Job ids that sbatch answered so far (the wrapper's log), in order."""
        text = self.sbatch_log.read_text() if self.sbatch_log.exists() else ""
        return re.findall(r"Submitted batch job (\d+)", text)

    def sbatch_calls(self) -> int:
        text = self.sbatch_log.read_text() if self.sbatch_log.exists() else ""
        return text.count("sbatch-call:")

    def sacct(self, job: str, duplicates: bool = False, expect: int = 1, timeout: float = 30) -> list[dict]:
        """sacct's allocation rows of ``job`` (JobID, State, NodeList), once it holds ``expect`` of them
        in a final state (accounting reaches slurmdbd a moment after the job ends)."""
        rows: list[dict] = []
        deadline = time.monotonic() + timeout
        while True:
            args = ["sacct", "-X", "-n", "-P", "-o", "JobID,State,NodeList,ExitCode", "-j", job]
            args += ["-D"] if duplicates else []
            rows = [dict(zip(("id", "state", "node", "exit"), line.split("|"))) for line in self.run(args).splitlines()]
            final = [r for r in rows if r["state"].split()[0] not in NOT_FINAL]
            done = len(final) >= expect and rows[-1]["state"].split()[0] not in NOT_FINAL
            if done or time.monotonic() > deadline:
                return rows
            time.sleep(1)

    def job_ids(self) -> set[str]:
        """Every job the cluster knows: in its queue or in its accounting."""
        queue = self.run(["squeue", "-h", "-o", "%i"]).split()
        accounted = self.run(["sacct", "-X", "-n", "-P", "-o", "JobID", "-S", "2000-01-01"]).split()
        return set(queue) | set(accounted)

    def logs(self) -> str:
        """The tail of each daemon's log, for failure messages."""
        parts = []
        for log in sorted((self.directory / "log").glob("*.log")):
            parts.append(f"--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:]))
        return "\n".join(parts)

    def cancel_all(self) -> None:
        jobs = set(self.run(["squeue", "-h", "-o", "%A"], check=False).split())
        if jobs:
            self.run(["scancel", *sorted(jobs)], check=False)


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive free TCP ports on 127.0.0.1, from 16817 on (beside a cluster
    that scripts/local_slurm.sh already runs with its default ports)."""
    for base in range(16817, 30000, 10):
        for port in range(base, base + n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", port))
                except OSError:
                    break
        else:
            return base
    raise RuntimeError("no free ports")


@pytest.fixture(scope="session")
def cluster(request):
    # Not under pytest's tmp_path: that is mode 0700, and users munge and mysql must reach their files.
    directory = Path(tempfile.mkdtemp(prefix="svae-slurm-"))
    directory.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_"))}
    env["LOCAL_SLURM_DIR"] = str(directory)
    env["LOCAL_SLURM_PORT"] = str(free_ports(4))
    keep = False
    try:
        out = subprocess.run(
            ["bash", str(SCRIPT), "start", str(directory)], env=env, capture_output=True, text=True, timeout=1500
        )
        if out.returncode == 3:
            keep = True  # the install log it names
            reason = (out.stderr.strip().splitlines() or ["exit status 3"])[-1]
            pytest.skip(f"no local SLURM cluster: {reason}")
        if out.returncode != 0:
            pytest.fail(f"scripts/local_slurm.sh start failed ({out.returncode}):\n{out.stdout}{out.stderr}", False)
        bin_dir = directory / "bin"
        bin_dir.mkdir()
        sbatch_log = directory / "sbatch.log"
        real = shutil.which("sbatch")
        wrapper = bin_dir / "sbatch"
        # records every call and sbatch's answer, then answers as sbatch did
        wrapper.write_text(
            "#!/bin/sh\n"
            f'echo "sbatch-call: $*" >> {sbatch_log}\n'
            f'out=$({real} "$@")\n'
            "rc=$?\n"
            f'echo "$out" >> {sbatch_log}\n'
            'echo "$out"\n'
            "exit $rc\n"
        )
        wrapper.chmod(0o755)
        env["SLURM_CONF"] = str(directory / "etc" / "slurm.conf")
        env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
        node = subprocess.run(["hostname", "-s"], capture_output=True, text=True).stdout.strip()
        yield Cluster(directory, env, sbatch_log, node)
    finally:
        stop = subprocess.run(
            ["bash", str(SCRIPT), "stop", str(directory)], env=env, capture_output=True, text=True, timeout=300
        )
        sys.stderr.write(stop.stdout + stop.stderr)
        if request.session.testsfailed:
            sys.stderr.write(f"test_slurm: the cluster's configuration and logs stay in {directory}\n")
        elif not keep:
            shutil.rmtree(directory, ignore_errors=True)


def svae(cluster: Cluster, args: list[str], cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "svae_bench", *args],
        cwd=cwd,
        env=cluster.env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(cluster: Cluster, args: list[str], cwd: Path, log: Path) -> subprocess.Popen:
    """``svae-bench <args>`` in the background, its output in ``log``."""
    with open(log, "w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "svae_bench", *args],
            cwd=cwd,
            env=cluster.env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def finish(proc: subprocess.Popen, log: Path, timeout: float = 600) -> str:
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert proc.returncode == 0, f"{proc.args} failed ({proc.returncode}):\n{text[-3000:]}"
    return text


def on_slurm(tmp: Path, **launcher) -> list[str]:
    """The shipped launcher config, with what this 2-CPU node needs."""
    values = {
        "partition": PARTITION,
        "timeout_min": 10,
        "cpus_per_task": 1,
        "mem_gb": 1,
        "submitit_folder": f"{tmp}/submitit/%j",
        **launcher,
    }
    return ["hydra/launcher=slurm", *(f"hydra.launcher.{k}={v}" for k, v in values.items())]


def records(root: Path) -> dict[str, dict]:
    out = {}
    for path in sorted(root.rglob("result.json")):
        out[str(path.parent.relative_to(root))] = json.loads(path.read_text())
    return out


def assert_same_runs(cluster_root: Path, plain_root: Path, cells: int) -> dict[str, dict]:
    got, want = records(cluster_root), records(plain_root)
    assert sorted(got) == sorted(want) and len(got) == cells, (sorted(got), sorted(want))
    for cell, record in got.items():
        assert record["status"] == "complete", cell
        assert record["metrics"] == want[cell]["metrics"], cell
        assert record["epochs"] == want[cell]["epochs"], cell
    return got


def is_complete_record(record: dict) -> bool:
    return record.get("status") == "complete"


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def kill_on_exit(request, *procs: subprocess.Popen) -> None:
    def stop():
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    request.addfinalizer(stop)


@pytest.fixture(scope="session")
def seconds_per_epoch(cluster, tmp_path_factory) -> float:
    """Seconds per training epoch of 6000 synthetic points here and now (a 3-epoch run's median), so
    that the runs that must outlast a time limit or a scancel do so on fast and slow machines."""
    tmp = tmp_path_factory.mktemp("calibrate")
    args = ["run", "trainer.max_epochs=3", "dataset.n_train=6000", "dataset.n_val=500", "dataset.n_test=200"]
    out = svae(cluster, [*args, *SMALL, f"runs_root={tmp / 'runs'}"], tmp)
    assert out.returncode == 0, out.stderr[-2000:]
    log = (tmp / "runs" / CELL / "seed=0" / "run.log").read_text().splitlines()
    times = [float(m.group(1)) for line in log if (m := EPOCH_LINE.search(line))]
    assert len(times) == 3, log
    return max(statistics.median(times), 0.05)


def epochs_for(seconds: float, seconds_per_epoch: float, lo: int = 40, hi: int = 400) -> int:
    """Epochs that take about ``seconds`` here (``seconds_per_epoch`` at the run's data size)."""
    return min(hi, max(lo, math.ceil(seconds / seconds_per_epoch)))


def long_run(epochs: int, n_train: int) -> list[str]:
    return [
        "model=svae",
        f"trainer.max_epochs={epochs}",
        "trainer.patience=100000",  # no early stop: every epoch runs
        f"dataset.n_train={n_train}",
        "dataset.n_val=300",
        "dataset.n_test=200",
        *SMALL,
    ]


def wait_until(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the submitter ended ({proc.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.5)


def training(run_dir: Path, min_epoch: int) -> bool:
    status = read_json(run_dir / "status.json")
    return status.get("status") == "running" and (status.get("epoch") or 0) >= min_epoch


# ---------------------------------------------------------------------------------------------
# 1. A sweep is one job array, and its records are those of the basic launcher.


def test_sweep_is_one_job_array_with_the_basic_launchers_numbers(cluster, tmp_path, request):
    sweep = [
        "model=svae,nvae",
        "seed=range(2)",
        "trainer.max_epochs=3",
        "dataset.n_train=1200",
        "dataset.n_val=200",
        "dataset.n_test=200",
        *SMALL,
    ]
    calls = cluster.sbatch_calls()
    plain = start(cluster, ["run", "-m", *sweep, f"runs_root={tmp_path / 'plain'}"], tmp_path, tmp_path / "plain.log")
    request.addfinalizer(lambda: plain.poll() is None and plain.kill())
    out = svae(cluster, ["run", "-m", *sweep, f"runs_root={tmp_path / 'runs'}", *on_slurm(tmp_path)], tmp_path)
    finish(plain, tmp_path / "plain.log")
    assert out.returncode == 0, out.stderr[-3000:] + cluster.logs()

    assert cluster.sbatch_calls() == calls + 1  # one submission for the four runs
    job = cluster.submissions()[-1]
    script = (tmp_path / "submitit" / job / f"{job}_submission.sh").read_text()
    assert re.search(r"^#SBATCH --array=0-3%\d+$", script, re.M), script
    assert "#SBATCH --requeue" in script.splitlines()  # the shipped config's additional_parameters
    rows = cluster.sacct(job, expect=4)
    assert sorted(r["id"] for r in rows) == [f"{job}_{i}" for i in range(4)], rows
    assert {r["state"] for r in rows} == {"COMPLETED"} and {r["node"] for r in rows} == {cluster.node}, rows

    assert_same_runs(tmp_path / "runs", tmp_path / "plain", cells=4)
    assert not list((tmp_path / "runs").rglob("state.pt"))  # complete runs drop their resumable state


# ---------------------------------------------------------------------------------------------
# 2. A time limit: SLURM signals the job, submitit requeues it, the run resumes from state.pt.


def test_shipped_config_requeues_at_time_limits():
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf" / "hydra" / "launcher" / "slurm.yaml")
    assert cfg.max_num_timeout >= 1  # the plugin's default, 0, never requeues after a time limit
    assert cfg.additional_parameters.requeue is True  # scontrol requeue fails on jobs without --requeue
    assert cfg.signal_delay_s < cfg.timeout_min * 60 - 60


def test_time_limit_requeues_and_the_run_resumes_with_uninterrupted_numbers(
    cluster, seconds_per_epoch, tmp_path, request
):
    # about 65 s of training: more than the first attempt has (its signal comes at most 59 s in,
    # and the job needs some seconds to start), on fast machines and slow ones
    run = ["seed=0", *long_run(epochs_for(65, seconds_per_epoch), 6000)]
    calls = cluster.sbatch_calls()
    plain = start(cluster, ["run", *run, f"runs_root={tmp_path / 'plain'}"], tmp_path, tmp_path / "plain.log")
    request.addfinalizer(lambda: plain.poll() is None and plain.kill())
    # timeout_min=1: SLURM signals SIGUSR2 signal_delay_s (+ up to 60) s before the limit, so 1 s
    # here puts the signal 30-60 s into each attempt; max_num_timeout: room for slow machines
    launcher = on_slurm(tmp_path, timeout_min=1, signal_delay_s=1, max_num_timeout=10)
    began = time.monotonic()
    out = svae(cluster, ["run", "-m", *run, f"runs_root={tmp_path / 'runs'}", *launcher], tmp_path, timeout=1200)
    took = time.monotonic() - began
    assert out.returncode == 0, out.stderr[-3000:] + cluster.logs()

    assert cluster.sbatch_calls() == calls + 1  # requeued, never submitted again
    job = cluster.submissions()[-1]
    attempts = cluster.sacct(job, duplicates=True)
    states = [r["state"] for r in attempts]
    submitit_log = "".join(p.read_text() for p in sorted((tmp_path / "submitit").rglob("*_log.*")))
    assert "REQUEUED" in states, (attempts, took, submitit_log[-4000:])
    if states[-1] != "COMPLETED":
        # A known race, harmless: the last attempt finished its run and its result, and the limit's
        # SIGUSR2 came while Python was exiting (its handlers are then back to the default: die).
        # sacct says FAILED, ExitCode 0:12; the result and the record are complete.
        assert states[-1] == "FAILED" and attempts[-1]["exit"] == "0:12", (attempts, submitit_log[-4000:])
        last_attempt = submitit_log.rsplit("Loading pickle", 1)[-1]
        assert "Exiting after successful completion" in last_attempt, submitit_log[-4000:]
    assert "this job is timed-out" in submitit_log and "Requeued job" in submitit_log
    record = records(tmp_path / "runs")[str(CELL / "seed=0")]
    assert record["resumed_from_epoch"] > 0, (record["resumed_from_epoch"], states, took)
    assert any(e.get("event") == "resumed" for e in record["events"])
    finish(plain, tmp_path / "plain.log")
    assert_same_runs(tmp_path / "runs", tmp_path / "plain", cells=1)


# ---------------------------------------------------------------------------------------------
# 3./4. scancel a running job, re-submit: complete runs skip, the cancelled one resumes; and what
# `svae-bench status` says on the way.


@pytest.fixture(scope="module")
def cancelled_sweep(cluster, seconds_per_epoch, tmp_path_factory):
    """Two runs as one array; once both train, `svae-bench status`, then scancel of the second; the
    submitter ends, `status` again, the same command again, `status --all`. What each step gave."""
    tmp = tmp_path_factory.mktemp("scancel")
    root = tmp / "runs"
    cells = [root / CELL / f"seed={s}" for s in (0, 1)]

    def sweep_args(epochs: int) -> tuple[list[str], list[str]]:
        sweep = ["seed=0,1", *long_run(epochs, 3000)]
        return sweep, ["-m", *sweep, f"runs_root={root}", *on_slurm(tmp)]

    seen: dict = {"calls": cluster.sbatch_calls()}
    # `status` before anything runs (the run directories do not depend on the epochs), and how long
    # it takes: it imports torch, seconds to tens of seconds on a busy machine.
    began = time.monotonic()
    seen["before"] = svae(cluster, ["status", *sweep_args(1)[1]], tmp)
    status_s = time.monotonic() - began
    # Each run trains long enough to see both train, ask `status` (slower still beside two jobs and
    # the basic launcher's runs) and cancel one: 3000 points take half the calibration's epoch.
    sweep, args = sweep_args(epochs_for(max(25, 2 * status_s + 10), seconds_per_epoch / 2))
    seen["status_s"] = status_s
    plain = start(cluster, ["run", "-m", *sweep, f"runs_root={tmp / 'plain'}"], tmp, tmp / "plain.log")
    first = start(cluster, ["run", *args], tmp, tmp / "first.log")
    try:
        wait_until(lambda: all(training(c, 2) for c in cells), 300, "both runs train", first, tmp / "first.log")
        seen["during"] = svae(cluster, ["status", *args], tmp)
        seen["job"] = job = cluster.submissions()[-1]
        seen["environ"] = {}
        for line in seen["during"].stdout.splitlines():  # the processes `status` names, while they run
            m = re.match(r"running\s+\S+\s+epoch \d+ on \S+ \(pid (\d+)\)$", line)
            if m:
                try:
                    text = Path(f"/proc/{m.group(1)}/environ").read_bytes().decode(errors="replace")
                    seen["environ"][m.group(1)] = dict(v.split("=", 1) for v in text.split("\0") if "=" in v)
                except OSError:
                    seen["environ"][m.group(1)] = {}
        seen["epoch_at_cancel"] = read_json(cells[1] / "status.json").get("epoch")
        cluster.run(["scancel", f"{job}_1"])
        first.wait(timeout=600)
        seen["first_rc"], seen["first_log"] = first.returncode, (tmp / "first.log").read_text()
        seen["cancelled"] = svae(cluster, ["status", *args], tmp)
        seen["sacct"] = cluster.sacct(job, expect=2)
        seen["record0"] = (cells[0] / "result.json").read_bytes()
        seen["second"] = svae(cluster, ["run", *args], tmp)
        seen["after"] = svae(cluster, ["status", "--all", *args], tmp)
        seen["calls"] = cluster.sbatch_calls() - seen["calls"]
        finish(plain, tmp / "plain.log")
    finally:
        for proc in (plain, first):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        cluster.cancel_all()
    seen.update(tmp=tmp, root=root, cells=cells)
    return seen


def test_scancel_then_resubmit_skips_complete_runs_and_resumes_the_cancelled_one(cluster, cancelled_sweep):
    seen = cancelled_sweep
    job, cells = seen["job"], seen["cells"]
    assert seen["first_rc"] != 0 and "CANCELLED" in seen["first_log"], (seen["status_s"], seen["first_log"][-2000:])
    states = {r["id"]: r["state"] for r in seen["sacct"]}
    assert states[f"{job}_0"] == "COMPLETED" and states[f"{job}_1"].startswith("CANCELLED"), states
    second = seen["second"]
    assert second.returncode == 0, second.stderr[-3000:] + cluster.logs()
    assert seen["calls"] == 2  # the first submission and the same command again
    assert (cells[0] / "result.json").read_bytes() == seen["record0"]  # skipped, record untouched
    assert "is complete (force=true re-runs it)" in (cells[0] / "run.log").read_text()
    record = json.loads((cells[1] / "result.json").read_text())
    assert 0 < record["resumed_from_epoch"] < record["epochs"], record["resumed_from_epoch"]
    assert record["resumed_from_epoch"] >= seen["epoch_at_cancel"] - 1  # lost at most the epoch it was in
    assert_same_runs(seen["root"], seen["tmp"] / "plain", cells=2)


def test_status_shows_the_clusters_jobs_running_then_complete(cluster, cancelled_sweep):
    seen = cancelled_sweep
    during = seen["during"]
    assert during.returncode == 0, during.stderr
    lines = during.stdout.splitlines()
    assert re.match(r"2 runs \(.*\): 0 complete, 2 running, 0 missing$", lines[0]), during.stdout
    running = [re.match(r"running\s+(\S+)\s+epoch (\d+) on (\S+) \(pid (\d+)\)$", line) for line in lines[1:]]
    assert len(running) == 2 and all(running), during.stdout
    assert {m.group(1) for m in running} == {str(c) for c in seen["cells"]}
    assert {m.group(3) for m in running} == {cluster.node}  # the node each job runs on
    tasks = set()
    for m in running:  # each pid is the job's own process, on the cluster
        environ = seen["environ"][m.group(4)]
        assert environ.get("SLURM_ARRAY_JOB_ID") == seen["job"], (m.group(0), environ.get("SLURM_JOB_ID"))
        assert environ.get("SLURMD_NODENAME") == cluster.node
        tasks.add(environ["SLURM_ARRAY_TASK_ID"])
    assert tasks == {"0", "1"}

    cancelled = seen["cancelled"].stdout.splitlines()
    assert re.match(r"2 runs \(.*\): 1 complete, 1 interrupted, 0 missing$", cancelled[0]), cancelled
    assert re.match(rf"interrupted\s+{re.escape(str(seen['cells'][1]))}\s+after epoch \d+: re-run", cancelled[1])

    before = seen["before"].stdout.splitlines()
    assert seen["before"].returncode == 0 and re.match(r"2 runs \(.*\): 0 complete, 2 missing$", before[0]), before
    assert [line.split()[0] for line in before[1:]] == ["missing", "missing"], before

    after = seen["after"].stdout.splitlines()
    assert re.match(r"2 runs \(.*\): 2 complete, 0 missing$", after[0]), after
    assert [line.split()[0] for line in after[1:]] == ["complete", "complete"], after


# ---------------------------------------------------------------------------------------------
# 5. A bad value in one job: refused before anything is submitted or written.


def test_bad_value_in_one_job_is_refused_before_submission(cluster, tmp_path):
    calls, jobs = cluster.sbatch_calls(), cluster.job_ids()
    out = svae(
        cluster, ["run", "-m", "seed=0,-1", *SMALL, f"runs_root={tmp_path / 'runs'}", *on_slurm(tmp_path)], tmp_path
    )
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: seed=-1 must be"), out.stderr
    assert cluster.sbatch_calls() == calls  # sbatch never called
    assert cluster.job_ids() == jobs  # and no job appeared
    assert not (tmp_path / "runs").exists() and not (tmp_path / "submitit").exists()


# ---------------------------------------------------------------------------------------------
# 6. A node failure: SLURM requeues the job (sbatch --requeue), the run resumes from state.pt.


def test_node_failure_requeues_and_the_run_resumes(cluster, seconds_per_epoch, tmp_path, request):
    run = ["seed=0", *long_run(epochs_for(12, seconds_per_epoch / 2, lo=30), 3000)]
    cell = tmp_path / "runs" / CELL / "seed=0"
    plain = start(cluster, ["run", *run, f"runs_root={tmp_path / 'plain'}"], tmp_path, tmp_path / "plain.log")
    submitter = start(
        cluster,
        ["run", "-m", *run, f"runs_root={tmp_path / 'runs'}", *on_slurm(tmp_path)],
        tmp_path,
        tmp_path / "sub.log",
    )
    request.addfinalizer(lambda: [p.kill() for p in (plain, submitter) if p.poll() is None])
    node = f"nodename={cluster.node}"
    try:
        wait_until(lambda: training(cell, 2), 300, "the run trains", submitter, tmp_path / "sub.log")
        cluster.run(["scontrol", "update", node, "state=down", "reason=svae-bench-test"])
        job = cluster.submissions()[-1]
        wait_until(lambda: "PENDING" in cluster.run(["squeue", "-h", "-o", "%T", "-j", job]), 120, "the job requeued")
    finally:
        cluster.run(["scontrol", "update", node, "state=resume"], check=False)
    wait_until(lambda: is_complete_record(read_json(cell / "result.json")), 600, "the requeued run completes")
    states = [r["state"] for r in cluster.sacct(job, duplicates=True)]
    assert "NODE_FAIL" in states and states[-1] == "COMPLETED", states
    record = json.loads((cell / "result.json").read_text())
    assert record["resumed_from_epoch"] > 0
    finish(plain, tmp_path / "plain.log")
    assert_same_runs(tmp_path / "runs", tmp_path / "plain", cells=1)
    # The submitter follows its job with sacct: if it looked while the job was NODE_FAIL, before
    # SLURM requeued it, it gave up (submitit takes NODE_FAIL as final); the job went on regardless.
    # Then the same command again skips the complete run.
    submitter.wait(timeout=300)
    log = (tmp_path / "sub.log").read_text()
    if submitter.returncode != 0:
        assert "state: NODE_FAIL" in log, log[-3000:]
        again = svae(cluster, submitter.args[3:], tmp_path)
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads((cell / "result.json").read_text()) == record
