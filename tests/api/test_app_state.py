"""The app's state: Starlette's State, with each value also found by Python's ordinary lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagegate.app import AppState, create_app
from imagegate.settings import Settings


def test_values_set_either_way_are_plain_attributes_and_stay_in_the_state() -> None:
    state = AppState()
    state.gateway = "running"
    state["other"] = 2
    # In the instance itself, so reading them never goes through State.__getattr__.
    assert vars(state)["gateway"] == "running" and vars(state)["other"] == 2
    assert (state.gateway, state["other"], len(state)) == ("running", 2, 2)
    assert sorted(state) == ["gateway", "other"]
    del state.gateway
    del state["other"]
    assert len(state) == 0 and "gateway" not in vars(state)
    with pytest.raises(AttributeError):
        _ = state.gateway


def test_the_app_keeps_its_state_there(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path))
    assert isinstance(app.state, AppState)
