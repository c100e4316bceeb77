"""The names a space may use are the names the trainers accept: search_spaces keeps its own copy
(it imports nothing from trainers), so a name added on one side only fails here, not mid-sweep."""

from __future__ import annotations

import search_spaces
from trainers import data, stacked_mlp, stacked_optim, train_config


def test_space_vocabulary_matches_the_trainers() -> None:
    assert search_spaces.OPTIMIZERS == stacked_optim.OPTIMIZER_NAMES
    assert search_spaces.SCHEDULES == train_config.SCHEDULES
    assert tuple(stacked_mlp.ACTIVATIONS) == search_spaces.ACTIVATIONS
    assert search_spaces.PRECISIONS == train_config.PRECISIONS
    assert search_spaces.CAPTURE_MODES == train_config.CAPTURE_MODES
    assert set(search_spaces.NAMED_DATASETS) == set(data.NAMED_DATASETS)
