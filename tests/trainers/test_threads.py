"""torch's intra-op threads: one for a small stack, more only for large steps, the count a
space or flag sets when it sets one, and the process's own count again after the stack."""

from __future__ import annotations

import pytest
import torch

from trainers import load_dataset, make_folds
from trainers.problem import make_problem
from trainers.stacked_optim import OptimizerConfig
from trainers.threads import STEP_MACS_PER_THREAD, auto_threads, intra_op_threads, step_macs
from trainers.train_config import TrainConfig

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("macs", "ceiling", "expected"),
    [
        (0, 8, 1),
        (STEP_MACS_PER_THREAD, 8, 1),  # up to one share: one thread
        (STEP_MACS_PER_THREAD + 1, 8, 2),
        (3 * STEP_MACS_PER_THREAD, 8, 3),
        (100 * STEP_MACS_PER_THREAD, 8, 8),  # never past the process's pool
        (100 * STEP_MACS_PER_THREAD, 1, 1),
    ],
)
def test_auto_threads_gives_one_thread_per_share_of_a_steps_work(macs, ceiling, expected) -> None:
    assert auto_threads(macs, ceiling) == expected


def test_step_macs_counts_the_forward_multiply_adds_of_every_layer() -> None:
    # 20 rows x 64 samples x (10*50 + 50*1)
    assert step_macs(20, 64, (10, 50, 1)) == 20 * 64 * 550


def test_intra_op_threads_sets_the_count_inside_and_restores_it_after() -> None:
    before = torch.get_num_threads()
    with intra_op_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("threads", [None, 2])
def test_a_stack_trains_with_the_chosen_thread_count(threads) -> None:
    dataset = load_dataset("synthetic", n_samples=60, n_features=4, seed=0)
    problem = make_problem(dataset, make_folds(dataset, n_folds=3), device=CPU, threads=threads)
    config = TrainConfig(batch_size=8, epochs=1, optimizer=OptimizerConfig("adam", 1e-3))
    seen = []
    before = torch.get_num_threads()
    problem.train([config], on_epoch=lambda _index, _report: seen.append(torch.get_num_threads()))
    assert seen == [1 if threads is None else threads]  # a tiny stack: one thread on auto
    assert torch.get_num_threads() == before
