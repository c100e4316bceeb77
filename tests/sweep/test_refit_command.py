"""``sweep refit``: the recommended config trained on every row, saved as a state dict that
loads with ``weights_only=True``, and logged to the parent run as an MLflow PyTorch model that
``mlflow.pytorch.load_model`` reads back, with the same predictions."""

from __future__ import annotations

from pathlib import Path

import mlflow.pytorch
import pytest
import torch
from mlflow.tracking import MlflowClient

from sweep import load_best_config
from sweep.cli import main
from sweep.commands.run import RunOptions, run_sweep
from tests.conftest import local_tracking_uri, tiny_space
from tests.sweep.test_own_model import _space


@pytest.mark.slow
def test_refit_saves_a_weights_only_state_dict_and_an_mlflow_model(workdir: Path, capsys) -> None:
    run_sweep(RunOptions(space=str(tiny_space(workdir, epochs=20, trials=2))))
    assert main(["refit", "--study", "tiny"]) == 0
    out = capsys.readouterr().out
    path = workdir / "mlruns" / "models" / "tiny.pt"
    assert path.is_file() and f"wrote {Path('mlruns/models/tiny.pt')}" in out

    model = load_best_config("tiny").load_model(path)
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    inputs = torch.as_tensor(X, dtype=torch.float32)
    with torch.no_grad():
        ours = model(inputs)
    assert (ours.argmax(1).numpy() == y).mean() > 0.7  # iris from raw, unscaled features

    client = MlflowClient(local_tracking_uri())
    parent = client.search_runs(
        [client.get_experiment_by_name("tiny").experiment_id],
        filter_string="tags.`mlflow.parentRunId` IS NULL",
    )[0]
    assert parent.info.status == "FINISHED"  # logging the model kept the run's status
    assert len(client.get_metric_history(parent.info.run_id, "refit_train_loss")) == 20
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id, "refit")]
    assert artifacts == ["refit/tiny.pt"]
    mlflow.set_tracking_uri(local_tracking_uri())
    logged = mlflow.pytorch.load_model(f"runs:/{parent.info.run_id}/refit_model")
    with torch.no_grad():
        assert torch.allclose(logged(inputs), ours, atol=1e-5)


@pytest.mark.slow
def test_refit_of_a_users_cnn_builds_their_module(workdir: Path) -> None:
    run_sweep(RunOptions(space=str(_space(workdir, name="mine"))))
    target = workdir / "cnn.pth"
    wrong = ["--tracking-uri", f"sqlite:///{workdir / 'other.db'}"]
    assert main(["refit", "--study", "mine", "-o", str(target), *wrong]) == 2
    assert not target.exists() and not (workdir / "other.db").exists()
    assert main(["refit", "--study", "mine", "-o", str(target)]) == 0
    model = load_best_config("mine").load_model(target)
    assert type(model.model).__name__ == "TinyCNN"
    assert model(torch.zeros(5, 1, 6, 6)).shape == (5, 3)
    assert torch.equal(model.input_mean, torch.zeros(1, 6, 6))  # images are not standardised


def test_refit_refuses_a_directory_or_another_suffix_before_anything(workdir: Path, capsys) -> None:
    (workdir / "out").mkdir()
    for flag, rule in (
        (str(workdir / "out"), "must end in .pt"),
        ("model.json", "must end in .pt"),
    ):
        assert main(["refit", "--study", "x", "-o", flag]) == 2
        assert rule in capsys.readouterr().err
    (workdir / "dir.pt").mkdir()
    assert main(["refit", "--study", "x", "-o", "dir.pt"]) == 2
    assert "is a directory" in capsys.readouterr().err
    assert main(["refit", "--study", "nothing"]) == 2
    assert "no such database" in capsys.readouterr().err
    assert sorted(p.name for p in workdir.iterdir()) == ["dir.pt", "out"]  # nothing created


def test_load_model_refuses_a_file_that_is_not_a_refit(workdir: Path) -> None:
    from sweep.best_config_data import BestConfig, Provenance

    torch.save({"weight": torch.zeros(3)}, workdir / "plain.pt")
    torch.save([1, 2], workdir / "list.pt")
    provenance = Provenance("s", 0, 0.1, 0.0, "accuracy", 0.9, 0.0, 3, 5, 0, "iris", "f")
    best = BestConfig(
        batch_size=16,
        lr=0.01,
        optimizer="adam",
        optimizer_kwargs={},
        schedule={"name": "none", "epochs": 5},
        model={"hidden": [8], "activation": "relu", "dropout": 0.0},
        provenance=provenance,
        input_shape=[4],
        n_outputs=3,
    )
    with pytest.raises(ValueError, match="lacks"):
        best.load_model(workdir / "plain.pt")
    with pytest.raises(ValueError, match="not a state dict"):
        best.load_model(workdir / "list.pt")
