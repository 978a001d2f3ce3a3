"""Bad values from TOML, --set and options (NaN, inf, negative, huge models) are one line before any work."""

from __future__ import annotations

import typing

import pytest
from fixtures.cli import assert_one_line_error

from liftbench.config import resolve_config

# Whatever a test gives on top, a regression (the value accepted) trains for seconds, not hours.
QUICK = ["--data", "tiny", "--set", "epochs=1", "--set", "hidden_size=8", "--set", "batch_size=16", "--device", "cpu"]


# ------------------------------------------------------------------ config values (item 7)


@pytest.mark.parametrize("text,needles", [
    ('model = "mlp"\n', ["'model' must be a table", "[model]"]),
    ("train = 5\n", ["'train' must be a table"]),
    ('[model]\nname = 5\n', ["[model] name must be a lifter name"]),
    ("[train]\nlr = nan\n", ["'train.lr' must be a finite number"]),
    ("[model]\nsmoothness = inf\n", ["'model.smoothness' must be a finite number"]),
])
def test_bad_toml_values_are_one_line(tmp_path, run_cli, text, needles):
    path = tmp_path / "exp.toml"
    path.write_text(text)
    code, _, err = run_cli("train", "seq2seq", "--config", path, "--out", tmp_path / "out", *QUICK)
    assert_one_line_error(code, err, str(path), *needles)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,needles", [
    (["--seed", "-1"], ["train.seed", "got -1"]),
    (["--set", "lr=nan"], ["--set lr must be a finite number"]),
    (["--set", "smoothness=nan"], ["--set smoothness must be a finite number"]),
    (["--set", "dropout=inf"], ["--set dropout must be a finite number"]),
    (["--set", "train_noise=-inf"], ["--set train_noise must be a finite number"]),
    (["--subset", "nan"], ["data.subset must be a finite number"]),
    (["--set", "checkpoint_every_s=nan"], ["checkpoint_every_s must be a finite number"]),
])
def test_non_finite_and_negative_values_refused_before_any_work(tmp_path, run_cli, args, needles):
    code, _, err = run_cli("train", "seq2seq", "--out", tmp_path, *QUICK, *args)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "runs").exists()  # no config.toml that could not be read back


def test_every_float_field_of_every_section_is_checked():
    """Generic: whatever float field a section or lifter Config has, nan is refused (not only the ones above)."""
    import dataclasses

    from liftbench.config import DataConfig, TrainConfig
    from liftbench.errors import ConfigError
    from liftbench.models import LIFTERS

    for model in LIFTERS.names():
        sections = {"train": TrainConfig, "data": DataConfig, "model": LIFTERS.get(model).Config}
        for section, cls in sections.items():
            hints = typing.get_type_hints(cls)
            for f in dataclasses.fields(cls):
                if "float" in str(hints[f.name]):
                    with pytest.raises(ConfigError, match="finite"):
                        resolve_config(model, overrides={f"{section}.{f.name}": float("nan")})


def test_huge_model_refused_with_its_size_without_allocating():
    from liftbench.errors import ConfigError
    from liftbench.models import LIFTERS, create_lifter, trainable_parameters
    from liftbench.models.size import check_model_size, count_parameters

    # the meta-device count equals the real count (for a size that fits) ...
    for model in LIFTERS.names():
        assert count_parameters(model, LIFTERS.get(model).Config()) == trainable_parameters(create_lifter(model))
    # ... and for the MLP it is the closed form: stem 32H+H, 2 blocks x 2 x (H*H+H), head 48H+48, BN 2H per dense
    H = 10**6
    n = count_parameters("mlp", LIFTERS.get("mlp").Config(hidden_size=H))
    assert n == (32 * H + H + 2 * H) + 2 * 2 * (H * H + H + 2 * H) + (H * 48 + 48)
    with pytest.raises(ConfigError, match=r"4,000,095,000,048 parameters.*GiB"):
        resolve_config("mlp", overrides={"hidden_size": H})
    check_model_size("mlp", LIFTERS.get("mlp").Config(), limit_bytes=16 * 4_291_632)  # exactly fits: no error
    with pytest.raises(ConfigError, match="4,291,632 parameters"):
        check_model_size("mlp", LIFTERS.get("mlp").Config(), limit_bytes=16 * 4_291_632 - 1)


def test_huge_model_cli_is_one_line(run_cli, tmp_path):
    code, _, err = run_cli("train", "seq2seq", "--set", "hidden_size=1000000", "--out", tmp_path)
    assert_one_line_error(code, err, "hidden_size=1000000", "parameters", "GiB")


@pytest.mark.parametrize("sigma", ["nan", "inf", "-1"])
def test_evaluate_noise_sigma_must_be_finite(runs, run_cli, sigma):
    code, _, err = run_cli("evaluate", runs["done"], "--noise-sigma", sigma, "--device", "cpu")
    assert_one_line_error(code, err, "--noise-sigma must be a finite number >= 0")
