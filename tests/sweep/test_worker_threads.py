"""``--workers N`` shares the host's cores out: each worker's pool variables say cores // N,
or the count ``training.threads`` / ``--threads`` sets."""

from __future__ import annotations

import pytest

from sweep.cli import main
from sweep.perf.worker_threads import THREAD_VARIABLES, worker_environment, worker_threads


@pytest.mark.parametrize(
    ("workers", "threads", "cores", "expected"),
    [(1, None, 8, 8), (2, None, 8, 4), (3, None, 8, 2), (4, None, 2, 1), (2, 3, 8, 3)],
)
def test_each_worker_gets_its_share_of_the_cores(workers, threads, cores, expected) -> None:
    assert worker_threads(workers, threads=threads, cores=cores) == expected


def test_worker_environment_sets_every_pool_variable_and_keeps_the_rest() -> None:
    env = worker_environment({"PATH": "/bin", "OMP_NUM_THREADS": "16"}, 2, threads=None, cores=4)
    assert env["PATH"] == "/bin"
    assert all(env[name] == "2" for name in THREAD_VARIABLES)


@pytest.mark.parametrize("value", ["0", "-1", "two"])
def test_worker_refuses_a_bad_thread_count_before_opening_the_study(
    value: str, workdir, capsys
) -> None:
    assert main(["worker", "--study", "none", "--threads", value]) == 2
    err = capsys.readouterr().err
    assert "--threads" in err and repr(value) in err and "auto" in err
    assert not (workdir / "mlruns").exists()
