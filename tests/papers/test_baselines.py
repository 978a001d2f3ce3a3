"""Published baselines: every CSV loads and is complete, and the transcriptions add up."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from liftbench.errors import DataError, UnknownNameError
from liftbench.papers import baselines as B

SHIPPED = Path(B.__file__).resolve().parents[2] / "baselines"
CSV_FILES = sorted(p for p in SHIPPED.glob("*.csv") if not p.name.endswith(B.CLAIMS_SUFFIX))
ACTIONS = ["Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases",
           "Sitting", "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether"]
EXPECTED_FILES = {"hossain2018_table1_p1.csv", "hossain2018_table2_p2.csv", "hossain2018_table3_noise.csv",
                  "hossain2018_table4_ablation.csv", "hossain2018_corrected.csv", "martinez2017.csv",
                  "pavllo2019_table1_cpn.csv", "pavllo2019_table5_gt.csv", "zhu2023.csv", "zhang2022.csv"}
GROUPS = {"hossain2018", "hossain2018_corrected", "martinez2017", "pavllo2019", "zhu2023", "zhang2022"}


@pytest.fixture(autouse=True)
def _shipped_dir(monkeypatch):
    monkeypatch.delenv(B.ENV_VAR, raising=False)


def _check_average(df: pd.DataFrame, printed: float, tol: float) -> None:
    """15 per-action rows in canonical order + one action_mean row equal to ``printed``; the mean of
    the 15 values is within ``tol`` of it (a transcription check: a typo moves the mean)."""
    per_action = df[df["slice_type"] == "action"]
    assert per_action["slice"].tolist() == ACTIONS
    avg = df[(df["slice_type"] == "all") & (df["slice"] == "action_mean")]["value"]
    assert avg.tolist() == [printed]
    assert abs(per_action["value"].mean() - printed) <= tol, per_action["value"].mean()


# --------------------------------------------------------------------------------------------
# Every file
# --------------------------------------------------------------------------------------------

def test_all_expected_files_are_shipped():
    assert {p.name for p in CSV_FILES} == EXPECTED_FILES


@pytest.mark.parametrize("path", CSV_FILES, ids=lambda p: p.name)
def test_each_csv_loads_complete_and_cited(path):
    df = B.read_baseline_file(path)
    assert set(B.REQUIRED_COLUMNS) <= set(df.columns)
    for col in B.NUMERIC_COLUMNS:
        assert df[col].notna().all() and np.isfinite(df[col].to_numpy(dtype=float)).all(), col
    assert (df["value"] > 0).all()
    assert df["source"].str.len().gt(20).all()
    assert (df["unit"] == "mm").all()
    assert set(df["slice"][df["slice_type"] == "action"]) <= set(ACTIONS)
    # headline averages; a frame mean only where a source printed one beside it (mmpose's MotionBERT table)
    assert "action_mean" in set(df["slice"][df["slice_type"] == "all"])
    assert set(df["slice"][df["slice_type"] == "all"]) <= {"action_mean", "frame_mean"}
    assert set(df["protocol"]) <= {"p1", "p2"} and set(df["metric"]) <= {"mpjpe", "p_mpjpe"}
    # tidy: one row per (method, inputs, protocol, variant, noise, slice)
    key = ["method", "paper_label", "train_2d", "input_2d", "protocol", "variant", "noise_sigma_px", "seq_len", "slice"]
    assert not df.duplicated(key).any()
    # no text field is NaN (pandas groupby would silently drop those rows)
    text = df.select_dtypes(exclude="number")
    assert not text.isna().any().any()


def test_every_source_cites_a_table_or_the_correction():
    df = B.load_baselines()
    for src in df["source"].unique():
        assert any(where in src for where in ("Table", "Actual_result.png", "README.md", "PapersWithCode")), src


def test_load_all_adds_origin_and_group_key():
    df = B.load_baselines()
    assert (df["origin"] == "published").all()
    assert set(df["baseline"]) == GROUPS
    assert len(df) == sum(len(B.read_baseline_file(p)) for p in CSV_FILES)


# --------------------------------------------------------------------------------------------
# Transcription checks
# --------------------------------------------------------------------------------------------

def test_hossain_table1_averages():
    t1 = B.load_baselines("hossain2018_table1")
    ours = t1[(t1["method_id"] == "hossain2018") & (t1["input_2d"] == "sh_ft")]
    _check_average(ours, 51.9, 0.1)
    _check_average(t1[(t1["method_id"] == "hossain2018") & (t1["input_2d"] == "gt")], 39.2, 0.1)
    _check_average(t1[(t1["method_id"] == "martinez2017") & (t1["input_2d"] == "sh_ft")], 62.9, 0.1)
    _check_average(t1[(t1["method_id"] == "martinez2017") & (t1["input_2d"] == "gt")], 45.5, 0.1)


def test_hossain_table2_averages():
    t2 = B.load_baselines("hossain2018_table2")
    _check_average(t2[t2["method_id"] == "hossain2018"], 42.0, 0.1)
    _check_average(t2[t2["method_id"] == "martinez2017"], 47.7, 0.1)


def test_corrected_averages_58_25_and_44_09():
    c = B.load_baselines("hossain2018_corrected")
    _check_average(c[c["protocol"] == "p1"], 58.25, 0.05)
    _check_average(c[c["protocol"] == "p2"], 44.09, 0.05)
    assert c.loc[(c["protocol"] == "p1") & (c["slice"] == "SittingDown"), "value"].item() == 80.9


def test_martinez_file_averages_and_noise_rows():
    m = B.load_baselines("martinez2017")
    _check_average(m[(m["protocol"] == "p1") & (m["input_2d"] == "sh_ft")], 62.9, 0.1)
    _check_average(m[(m["protocol"] == "p1") & (m["input_2d"] == "gt")], 45.5, 0.1)
    _check_average(m[(m["protocol"] == "p2") & (m["train_2d"] == "sh_ft")], 47.7, 0.1)
    noise = m[(m["protocol"] == "p2") & (m["train_2d"] == "gt")]
    got = dict(zip(zip(noise["input_2d"], noise["noise_sigma_px"]), noise["value"]))
    assert got == {("gt", 0.0): 37.10, ("gt+noise", 5.0): 46.65, ("gt+noise", 10.0): 52.84,
                   ("gt+noise", 15.0): 59.97, ("gt+noise", 20.0): 70.24, ("sh_pt", 0.0): 60.52}


def test_martinez_rows_agree_wherever_they_appear():
    m = B.load_baselines("martinez2017")
    quoted = B.load_baselines("hossain2018")
    quoted = quoted[quoted["method_id"] == "martinez2017"]
    key = ["protocol", "train_2d", "input_2d", "noise_sigma_px", "slice"]
    merged = quoted.merge(m, on=key, suffixes=("_h", "_m"))
    assert len(merged) == len(quoted) == len(m)
    assert (merged["value_h"] == merged["value_m"]).all()


def test_table3_noise_values():
    t3 = B.load_baselines("hossain2018_table3_noise")
    assert (t3["protocol"] == "p2").all() and (t3["train_2d"] == "gt").all()
    ours = t3[t3["method"] == "Ours"].sort_values("noise_sigma_px", kind="stable")
    assert ours[ours["input_2d"] != "sh_pt"]["value"].tolist() == [31.67, 37.46, 49.41, 61.80, 73.65]
    assert ours[ours["input_2d"] == "sh_pt"]["value"].tolist() == [62.43]
    moreno = t3[t3["method_id"] == "moreno_noguer2017"]
    assert moreno["value"].tolist() == [62.17, 67.11, 79.12, 96.08, 115.55]  # no GT/SH value printed ("–")


def test_table4_deltas_equal_value_minus_51_9():
    t4 = B.load_baselines("hossain2018_table4")
    assert t4["variant"].tolist() == ["full", "no_smoothness", "no_dropout", "no_layer_norm",
                                      "no_layer_norm_no_dropout", "no_residual"]
    assert np.allclose(t4["delta"], t4["value"] - 51.9, atol=1e-9)
    assert t4.loc[t4["variant"] == "full", "value"].item() == 51.9
    assert (t4["protocol"] == "p1").all()


def test_no_figure3_values_are_invented():
    df = B.load_baselines()
    assert not df["table"].str.contains("Figure").any()
    hossain = df[(df["method_id"] == "hossain2018")]
    assert set(hossain["seq_len"]) == {5}


# --------------------------------------------------------------------------------------------
# API: keys, listing, filtering, errors
# --------------------------------------------------------------------------------------------

def test_keys_resolve_to_groups_stems_and_tables():
    assert set(B.load_baselines("hossain2018")["baseline_file"]) == {
        "hossain2018_table1_p1.csv", "hossain2018_table2_p2.csv", "hossain2018_table3_noise.csv",
        "hossain2018_table4_ablation.csv"}
    assert B.load_baselines("hossain2018_table3_noise").equals(B.load_baselines("hossain2018_table3"))
    assert set(B.load_baselines("hossain2018_corrected")["baseline"]) == {"hossain2018_corrected"}


def test_list_baselines():
    info = {b.key: b for b in B.list_baselines()}
    assert set(info) == GROUPS
    assert info["hossain2018"].n_rows == len(B.load_baselines("hossain2018"))
    assert all(b.description and b.source for b in info.values())
    key, description, n_rows, source = info["martinez2017"]  # a plain tuple for the CLI
    assert n_rows == 54 and "ICCV 2017" in source


def test_paper_values_filters():
    sel = B.paper_values("hossain2018", "p2", input_2d="gt+noise", noise_sigma_px=10)
    assert sorted(sel["value"]) == [49.41, 52.84, 79.12]
    sel = B.paper_values("hossain2018_table4", "mpjpe", variant="no_residual")
    assert sel["value"].tolist() == [102.4]
    assert B.paper_values("hossain2018_table4", "mpjpe", variant="mlp").empty
    with pytest.raises(UnknownNameError, match="Available: mpjpe"):
        B.paper_values("hossain2018_table4", "p_mpjpe")


def test_unknown_key_suggests_close_names():
    with pytest.raises(UnknownNameError, match=r"Unknown baseline 'hossain2017'.*Did you mean: hossain2018"):
        B.load_baselines("hossain2017")


def _copy_to(tmp_path: Path) -> Path:
    d = tmp_path / "bl"
    d.mkdir()
    for p in CSV_FILES:
        shutil.copy(p, d / p.name)
    return d


def test_env_override_and_missing_directory(tmp_path, monkeypatch):
    d = _copy_to(tmp_path)
    (d / "martinez2017.csv").unlink()
    monkeypatch.setenv(B.ENV_VAR, str(d))
    assert B.baselines_dir() == d
    assert "martinez2017" not in set(B.load_baselines()["baseline"])
    monkeypatch.setenv(B.ENV_VAR, str(tmp_path / "nowhere"))
    with pytest.raises(DataError, match="nowhere"):
        B.load_baselines()


@pytest.mark.parametrize("damage, match", [
    (lambda t: t.replace(",source", ",citation", 1), "lacks column"),
    (lambda t: t.replace(",51.9,", ",n/a,", 1), "'value' needs a finite number on line"),
    (lambda t: t + "just,one,ragged,line,with,too,many,fields" + ",x" * 30 + "\n", "not a readable CSV"),
    (lambda t: t.replace(",p1,mpjpe,", ",p1,p_mpjpe,", 1), "protocol p1 goes with metric mpjpe"),
    (lambda t: t.splitlines()[0] + "\n", "no rows"),
])
def test_malformed_csv_raises_data_error_naming_the_file(tmp_path, monkeypatch, damage, match):
    d = _copy_to(tmp_path)
    target = d / "hossain2018_table4_ablation.csv"
    target.write_text(damage(target.read_text()))
    monkeypatch.setenv(B.ENV_VAR, str(d))
    with pytest.raises(DataError, match=match) as err:
        B.load_baselines("hossain2018_table4")
    assert "hossain2018_table4_ablation.csv" in str(err.value)


def test_empty_source_is_rejected(tmp_path, monkeypatch):
    d = _copy_to(tmp_path)
    target = d / "hossain2018_table4_ablation.csv"
    df = pd.read_csv(target, dtype=str, keep_default_na=False)
    df.loc[2, "source"] = ""
    df.to_csv(target, index=False)
    monkeypatch.setenv(B.ENV_VAR, str(d))
    with pytest.raises(DataError, match=r"empty 'source' on line\(s\) 4"):
        B.load_baselines()


# --------------------------------------------------------------------------------------------
# Settings of every published number (issue 18) and Pavllo et al. 2019
# --------------------------------------------------------------------------------------------

def test_every_row_records_its_setting():
    df = B.load_baselines()
    for col, allowed in B.SETTING_VALUES.items():
        rows = df[df["protocol"] == "p2"] if col == "p2_kind" else df  # the P2 kind belongs to P2 numbers only
        assert col in df.columns and rows[col].isin(allowed).all(), col  # never empty in the shipped files
    assert (df.loc[df["protocol"] == "p1", "p2_kind"] == "").all()
    temporal = pd.to_numeric(df["seq_len"]) > 1
    clip = df["method_id"].isin(["zhu2023", "zhang2022"])  # seq2seq clip models: every frame of a clip is an output
    assert (df.loc[clip, "alignment"] == "clip").all()
    assert df.loc[temporal & ~clip, "alignment"].isin(["causal", "centred"]).all()
    assert (df.loc[~temporal, "alignment"] == "frame").all()
    assert set(df["train_2d"]) | set(df["input_2d"]) >= {"gt", "sh_ft", "sh_pt", "cpn_ft"}


def test_bug_flags_name_an_existing_corrected_counterpart():
    df = B.load_baselines()
    buggy = df[df["evaluation_bug"] == "true"]
    # every Hossain number printed in the ECCV paper (Tables 1-4) came from the buggy evaluation; nothing else did
    assert set(buggy["method_id"]) == {"hossain2018"} and set(buggy["paper"]) == {"hossain2018"}
    own = df[(df["baseline"] == "hossain2018") & (df["method_id"] == "hossain2018")]
    assert not (own["evaluation_bug"] != "true").any()
    assert (df[df["baseline"].isin(["hossain2018_corrected", "martinez2017"])]["evaluation_bug"] == "false").all()
    named = buggy[buggy["corrected_by"] != ""]
    # only the SH full-model rows have a published correction, and it is a shipped key
    assert set(named["input_2d"]) == {"sh_ft"} and set(named["variant"]) == {"full"}
    for key in set(named["corrected_by"]):
        assert len(B.load_baselines(key)) > 0
    assert (df.loc[df["evaluation_bug"] != "true", "corrected_by"] == "").all()


P1_243 = [45.2, 46.7, 43.3, 45.6, 48.1, 55.1, 44.6, 44.3, 57.3, 65.8, 47.1, 44.0, 49.0, 32.8, 33.9]


@pytest.mark.parametrize("label, protocol, printed", [
    ("Ours, 243 frames, full conv.", "p1", 46.8), ("Ours, 243 frames, causal conv.", "p1", 49.0),
    ("Ours, 243 frames, full conv., GT boxes (*)", "p1", 47.1), ("Ours, single-frame", "p1", 51.8),
    ("Ours, 243 frames, full conv.", "p2", 36.5), ("Ours, 243 frames, causal conv.", "p2", 38.1),
    ("Ours, 243 frames, full conv., GT boxes (*)", "p2", 36.8), ("Ours, single-frame", "p2", 40.0),
])
def test_pavllo_table1_averages_equal_the_mean_of_the_actions(label, protocol, printed):
    t1 = B.load_baselines("pavllo2019_table1")
    rows = t1[(t1["paper_label"] == label) & (t1["protocol"] == protocol)]
    # each value and the average are rounded to 0.1 mm: the mean of the 15 lies within 0.05 + 0.05 of the printed one
    _check_average(rows, printed, 0.1)


def test_pavllo_settings_and_quoted_rows():
    pv = B.load_baselines("pavllo2019")
    headline = pv[(pv["slice"] == "action_mean") & (pv["method_id"] == "pavllo2019")]
    per_action = pv[(pv["slice_type"] == "action") & (pv["protocol"] == "p1") & (pv["alignment"] == "centred")
                    & (pv["input_2d"] == "cpn_ft")]
    assert per_action["value"].tolist() == P1_243 and set(per_action["seq_len"]) == {243}
    assert (pv.loc[pv["method_id"] == "pavllo2019", "within_action"] == "frames").all()
    got = {(r.input_2d, int(r.seq_len), r.alignment, r.tta, r.protocol): r.value for r in headline.itertuples()
           if r.variant == "full"}
    assert got[("cpn_ft", 243, "centred", "flip", "p1")] == 46.8
    assert got[("cpn_ft", 243, "causal", "flip", "p1")] == 49.0
    assert got[("cpn_ft", 1, "frame", "flip", "p2")] == 40.0
    assert got[("cpn_ft_gt_boxes", 27, "centred", "flip", "p1")] == 48.8
    assert got[("cpn_ft_gt_boxes", 81, "centred", "flip", "p2")] == 37.2
    assert got[("gt", 243, "centred", "none", "p1")] == 37.8 and got[("gt", 27, "centred", "none", "p1")] == 40.6
    assert got[("gt", 243, "centred", "flip", "p1")] == 37.2
    quoted = pv[pv["method_id"] != "pavllo2019"].set_index(["method_id", "protocol", "input_2d"])["value"]
    assert quoted[("hossain2018", "p1", "sh_ft")] == 58.3 and quoted[("hossain2018", "p2", "sh_ft")] == 44.1
    assert quoted[("martinez2017", "p1", "sh_ft")] == 62.9 and quoted[("martinez2017", "p2", "sh_ft")] == 47.7
    corrected = B.load_baselines("hossain2018_corrected")
    for protocol, value in (("p1", 58.3), ("p2", 44.1)):  # Pavllo's quote is the correction, rounded
        exact = corrected[(corrected["protocol"] == protocol) & (corrected["slice"] == "action_mean")]["value"].item()
        assert abs(exact - value) <= 0.05 + 1e-9


def test_claims_files_are_not_read_as_published_numbers():
    assert (SHIPPED / "hossain2018_claims.csv").is_file()
    assert "hossain2018_claims.csv" not in set(B.load_baselines()["baseline_file"])


@pytest.mark.parametrize("stem, key, old, new, message", [
    ("hossain2018_table4_ablation", "hossain2018_table4", ",causal,none,", ",forward,none,",
     r"column 'alignment' must be one of causal, centred, frame, clip"),
    ("zhang2022", "zhang2022", ",mixste,all,", ",Mix STE!,all,",
     r"zhang2022.csv: column 'convention' must be an evaluation convention name"),
])
def test_bad_setting_value_is_rejected(tmp_path, monkeypatch, stem, key, old, new, message):
    d = _copy_to(tmp_path)
    target = d / f"{stem}.csv"
    assert old in target.read_text()  # the damage below really changes the file
    target.write_text(target.read_text().replace(old, new, 1))
    monkeypatch.setenv(B.ENV_VAR, str(d))
    with pytest.raises(DataError, match=message):
        B.load_baselines(key)


# --------------------------------------------------------------------------------------------
# MotionBERT (Zhu et al. 2023) and MixSTE (Zhang et al. 2022), issue 23
# --------------------------------------------------------------------------------------------

def test_motionbert_numbers_with_their_convention_and_averaging():
    mb = B.load_baselines("zhu2023")
    got = {(r.paper_label, r.protocol, r.slice): r.value for r in mb.itertuples()}
    assert got[("MB_train_h36m (scratch)", "p1", "action_mean")] == 39.2
    assert got[("MB_ft_h36m (fine-tuned)", "p1", "action_mean")] == 37.2
    assert got[("MotionBERT (finetune)", "p1", "action_mean")] == 37.5
    assert got[("MotionBERT scratch (mmpose)", "p1", "frame_mean")] == 39.8
    assert got[("MotionBERT scratch (mmpose)", "p1", "action_mean")] == 39.2  # mmpose agrees with the README
    assert got[("MotionBERT fine-tuned (mmpose)", "p1", "frame_mean")] == 37.7
    assert got[("MotionBERT scratch (mmpose)", "p2", "action_mean")] == 33.4
    assert got[("MotionBERT fine-tuned (mmpose)", "p2", "action_mean")] == 32.2
    # its own frame set (tails and three S9 takes left out), said in every row; SH + confidence, 243-frame clips
    assert (mb["convention"] == "motionbert").all() and mb["note"].str.contains("fewer frames than the full").all()
    assert set(mb["input_2d"]) == set(mb["train_2d"]) == {"sh_ft"} and set(mb["seq_len"]) == {243}
    assert (mb["tta"] == "flip").all() and (mb["evaluation_bug"] == "false").all()
    # pre-trained then fine-tuned is another recipe: a variant no liftbench run claims to be
    assert set(mb.loc[mb["value"].isin([37.2, 37.5, 37.7, 32.2]), "variant"]) == {"finetuned"}
    assert set(mb.loc[mb["value"].isin([39.2, 39.8, 33.4]), "variant"]) == {"full"}
    # the frame mean is worse than the action mean by 0.5-0.6 mm, as the facts sheet says
    assert 0.5 - 1e-9 <= 39.8 - 39.2 <= 0.6 + 1e-9 and 0.5 - 1e-9 <= 37.7 - 37.2 <= 0.6 + 1e-9


def test_mixste_numbers_with_their_convention():
    mx = B.load_baselines("zhang2022")
    got = {(r.input_2d, int(r.seq_len), r.protocol): r.value for r in mx.itertuples()}
    assert got == {("cpn_ft", 243, "p1"): 40.9, ("cpn_ft", 243, "p2"): 32.6, ("cpn_ft", 81, "p1"): 42.4,
                   ("gt", 243, "p1"): 21.6, ("hrnet", 243, "p1"): 39.8}
    assert (mx["convention"] == "mixste").all() and (mx["slice"] == "action_mean").all()
    assert (mx["train_2d"] == mx["input_2d"]).all() and (mx["variant"] == "full").all()
