import dataclasses
import tomllib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from liftbench.config import config_from_dict, parse_assignments, resolve_config, toml_dumps
from liftbench.errors import ConfigError, UnknownNameError
from liftbench.models import LIFTERS

ROOT = Path(__file__).resolve().parent.parent


def test_precedence_defaults_file_options_set(tmp_path):
    f = tmp_path / "exp.toml"
    f.write_text('[model]\nname = "seq2seq"\nhidden_size = 64\ndropout = 0.1\n[train]\nepochs = 7\nseed = 3\n')
    cfg = resolve_config(None, f, options={"train.epochs": 9}, overrides=parse_assignments(["dropout=0.2"]))
    assert cfg.model == "seq2seq"
    assert cfg.model_params["hidden_size"] == 64  # file beats default
    assert cfg.train.epochs == 9  # option beats file
    assert cfg.model_params["dropout"] == 0.2  # --set beats everything
    assert cfg.train.seed == 3
    assert cfg.model_params["seq_len"] == 5  # untouched default


def test_paper_training_defaults_filled_in():
    assert resolve_config("seq2seq").resolved_train().lr == 1e-5
    assert resolve_config("seq2seq").resolved_train().batch_size == 32
    assert resolve_config("martinez").resolved_train().epochs == 200


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError, match=r"unknown key 'hiden_size'.*hidden_size"):
        resolve_config("seq2seq", overrides={"hiden_size": 3})


def test_wrong_type_and_bad_value():
    with pytest.raises(ConfigError, match="hidden_size"):
        resolve_config("mlp", overrides={"hidden_size": "big"})
    with pytest.raises(ConfigError, match="epochs"):
        resolve_config("mlp", overrides={"epochs": -1})


def test_unknown_model_suggests():
    with pytest.raises(UnknownNameError, match="Did you mean: seq2seq"):
        resolve_config("seq2sq")


def test_unknown_section_in_file(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[modle]\nname='mlp'\n")
    with pytest.raises(ConfigError, match="unknown section"):
        resolve_config("mlp", f)


def test_hash_stable_and_sensitive():
    a = resolve_config("seq2seq", overrides={"hidden_size": 32})
    b = resolve_config("hossain", options={"model.hidden_size": 32})
    c = resolve_config("seq2seq", overrides={"hidden_size": 33})
    assert a.config_hash() == b.config_hash()
    assert a.config_hash() != c.config_hash()
    # an explicit paper default hashes like the implicit one
    assert resolve_config("seq2seq", overrides={"lr": 1e-5}).config_hash() == resolve_config("seq2seq").config_hash()


def test_roundtrip_through_dict_and_toml(tmp_path):
    cfg = resolve_config("mlp", overrides={"dropout": 0.25, "subset": 0.5, "train_subjects": "S1,S5"})
    again = config_from_dict(cfg.to_dict())
    assert again.config_hash() == cfg.config_hash()
    path = tmp_path / "r.toml"
    path.write_text(toml_dumps(cfg.to_dict()))
    from_file = resolve_config(None, path)
    assert from_file.config_hash() == cfg.config_hash()


@pytest.mark.parametrize("model", ["mlp", "seq2seq"])
def test_shipped_configs_equal_paper_defaults(model):
    doc = tomllib.loads((ROOT / "configs" / f"{model}.toml").read_text())
    cls = LIFTERS.get(model)
    assert {k: v for k, v in doc["model"].items() if k != "name"} == dataclasses.asdict(cls.Config())
    for key in ("lr", "batch_size", "epochs"):
        assert doc["train"][key] == cls.train_defaults[key]
    assert resolve_config(None, ROOT / "configs" / f"{model}.toml").config_hash() == resolve_config(model).config_hash()


@pytest.mark.parametrize("model", ["mlp", "seq2seq", "tcn", "motionbert", "mixste"])
def test_shipped_configs_hold_every_train_and_data_key(model):
    from liftbench.config import DataConfig, TrainConfig

    doc = tomllib.loads((ROOT / "configs" / f"{model}.toml").read_text())
    assert set(doc["train"]) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert set(doc["data"]) >= {f.name for f in dataclasses.fields(DataConfig)} - {"train_subjects", "test_subjects"}


def test_checkpoint_interval_is_not_part_of_the_run_id_but_precision_is():
    base = resolve_config("mlp")
    assert resolve_config("mlp", overrides={"checkpoint_every_s": 5.0}).run_id == base.run_id
    assert resolve_config("mlp", overrides={"precision": "bf16"}).run_id != base.run_id
    with pytest.raises(ConfigError, match="train.precision must be one of fp32, tf32, bf16"):
        resolve_config("mlp", overrides={"precision": "fp16"})


def test_non_finite_values_never_reach_a_config_file():
    """nan/inf from --set, an option or a TOML file are refused where they are given (issue 15 item 7): a
    resolved config only ever holds finite floats, so its config.toml can be read back."""
    for where in ({"overrides": {"smoothness": float("nan")}}, {"options": {"train.lr": float("inf")}},
                  {"overrides": {"data.train_noise": float("-inf")}}):
        with pytest.raises(ConfigError, match="finite"):
            resolve_config("seq2seq", **where)


@settings(max_examples=40, deadline=None)
@given(smoothness=st.floats(0.0, 1e6, allow_nan=False), lr=st.floats(1e-12, 10.0), noise=st.floats(0.0, 1e4))
def test_any_accepted_config_reads_back_from_its_toml(tmp_path_factory, smoothness, lr, noise):
    cfg = resolve_config("seq2seq", overrides={"smoothness": smoothness, "lr": lr, "train_noise": noise})
    path = tmp_path_factory.mktemp("rt") / "config.toml"
    path.write_text(toml_dumps(cfg.to_dict()))
    again = resolve_config(None, path)
    assert again.config_hash() == cfg.config_hash()
    assert again.model_params["smoothness"] == smoothness and again.resolved_train().lr == lr
