"""Process model: selection by cross-validation, uncertainty, artifact round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import env
from env.data import load_plant_data
from env.model import ProcessModel, fit_process_model
from tests.datasets import write_dataset


def test_cv_reports_every_candidate_and_picks_a_nonlinear_model(sample_plant: env.Plant) -> None:
    scores = {s.family: s for s in sample_plant.model.cv_scores}
    assert set(scores) == {"linear", "quadratic", "cubic", "rbf"}
    assert sample_plant.model.family != "linear"  # the synthetic furnace is non-linear
    chosen = scores[sample_plant.model.family]
    assert chosen.rmse == min(s.rmse for s in scores.values())
    assert scores["linear"].r2 < chosen.r2 <= 1.0
    # the sample plant's noise is 1.2 degC: a good model cannot beat it by much
    assert 1.0 < chosen.rmse < 1.6


def test_linear_plant_prefers_a_simple_model(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 10, size=(300, 2))
    frame = pd.DataFrame({"y": 3.0 * x[:, 0] - 2.0 * x[:, 1] + rng.normal(0, 0.5, 300)})
    frame["a"], frame["b"] = x[:, 0], x[:, 1]
    frame.to_csv(tmp_path / "lin.csv", index=False)
    (tmp_path / "lin.yaml").write_text(
        "csv: lin.csv\nstate: y\nband: [0, 5]\n"
        "controls: [{name: a, step: 0.5}, {name: b, step: 0.5}]\n"
    )
    model = fit_process_model(load_plant_data(env.load_spec(tmp_path / "lin.yaml")))
    linear = next(s for s in model.cv_scores if s.family == "linear")
    assert linear.r2 > 0.98
    assert model.residual_std == pytest.approx(0.5, rel=0.2)


def test_uncertainty_grows_away_from_the_data(sample_plant: env.Plant) -> None:
    model = sample_plant.model
    _, on_data = model.predict_with_std(sample_plant.data.controls)
    far = sample_plant.upper + 3 * (sample_plant.upper - sample_plant.lower)
    _, off_data = model.predict_with_std(far)
    assert off_data > 5 * np.median(on_data)


def test_artifact_is_plain_json_and_round_trips(sample_plant: env.Plant, tmp_path: Path) -> None:
    path = sample_plant.model.save(tmp_path / "model.json")
    data = json.loads(path.read_text())  # plain JSON, nothing executable
    assert data["csv_sha256"] == sample_plant.data.csv_sha256
    assert data["family"] == sample_plant.model.family
    loaded = ProcessModel.load(path)
    controls = sample_plant.data.controls[:50]
    np.testing.assert_array_equal(loaded.predict(controls), sample_plant.model.predict(controls))
    np.testing.assert_array_equal(
        loaded.predict_with_std(controls)[1], sample_plant.model.predict_with_std(controls)[1]
    )


def test_model_from_another_csv_is_refused(tmp_path: Path) -> None:
    spec_a = write_dataset(tmp_path / "a", 2, seed=1)
    spec_b = write_dataset(tmp_path / "b", 2, seed=2)
    model_a = env.load_plant(spec_a).model.save(tmp_path / "a.model.json")
    assert env.load_plant(spec_a, model_a).model.family  # matching CSV: accepted
    with pytest.raises(env.InputError, match="different CSV"):
        env.load_plant(spec_b, model_a)


@pytest.mark.parametrize("family", ["linear", "quadratic", "cubic", "rbf"])
def test_fast_paths_agree_with_the_reference_prediction(family: str, tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, 3, spec_extra={"model": {"candidates": [family]}})
    model = env.load_plant(spec).model
    assert model.family == family
    rng = np.random.default_rng(0)
    axes = [rng.uniform(0, 40, size=n) for n in (3, 4, 5)]
    mesh = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    np.testing.assert_allclose(model.predict_grid(axes), model.predict(mesh), rtol=1e-12)
    for point in mesh.reshape(-1, 3)[:20]:
        assert model.predict_scalar(point.tolist()) == pytest.approx(model.predict(point))


def test_fit_is_reproducible(tmp_path: Path) -> None:
    spec = write_dataset(tmp_path, 2)
    data = load_plant_data(env.load_spec(spec))
    assert fit_process_model(data).to_dict() == fit_process_model(data).to_dict()


def test_a_model_file_that_is_not_a_mapping_is_one_input_error(tmp_path: Path) -> None:
    from env.errors import InputError

    for data in ([1, 2], "text", None):
        with pytest.raises(InputError, match="not a process model artifact"):
            ProcessModel.from_dict(data, tmp_path / "model.json")  # type: ignore[arg-type]
