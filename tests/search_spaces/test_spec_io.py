"""A spec survives the trip through the study's storage unchanged."""

from __future__ import annotations

import json

import pytest

from search_spaces import load_space
from search_spaces.spec_io import spec_from_dict, spec_to_dict


@pytest.mark.parametrize("name", ["default", "seed_article", "quick"])
def test_bundled_spec_round_trips_through_json(name: str) -> None:
    spec = load_space(name)
    assert spec_from_dict(json.loads(json.dumps(spec_to_dict(spec)))) == spec
