"""Like-for-like matching with published numbers, bug flags, the two averagings, the recipe banner and
the test-set counts of the protocol card (a fixture with a missing take)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from liftbench.config import resolve_config
from liftbench.data.testset import count_test_set
from liftbench.evaluate import Predictions, score
from liftbench.models import LIFTERS, lifter_contract
from liftbench.papers import match as PM
from liftbench.papers.baselines import load_baselines


def lifter_for(method: str) -> str:
    """The registered lifter that re-implements a published method (asked from the registry, never named)."""
    names = [n for n in LIFTERS.names() if lifter_contract(n).method == method]
    assert names, method
    return names[0]


PUB = load_baselines()
ABLATIONS = frozenset(v for v in PUB["variant"].unique() if v != "full")


def setting(method="hossain2018", keypoints="sh_ft_h36m", seq_len=5, alignment="causal", tta="none", variant="full",
            dataset="h36m", test_noise=0.0, train_noise=0.0) -> PM.MeasuredSetting:
    return PM.MeasuredSetting(method, dataset, keypoints, train_noise, test_noise, seq_len, alignment, tta, variant)


def matching(s: PM.MeasuredSetting) -> pd.DataFrame:
    ok = [not PM.setting_differences(s, r, ABLATIONS) for _, r in PUB.iterrows()]
    return PUB[np.array(ok, dtype=bool)]


def test_keypoint_families():
    assert PM.keypoint_family("gt") == "gt" and PM.keypoint_family("gt", 5.0) == "gt+noise"
    assert PM.keypoint_family("sh_ft_h36m") == "sh_ft" and PM.keypoint_family("sh_pt_mpii") == "sh_pt"
    assert PM.keypoint_family("cpn_ft_h36m_dbb") == "cpn_ft"
    assert PM.keypoint_family("detectron_ft_h36m") is None and PM.keypoint_family("sh_ft_h36m", 5.0) == "sh_ft"


def test_a_gt_run_never_gets_a_detection_delta():
    for method in ("hossain2018", "martinez2017", "pavllo2019"):
        for seq_len, alignment in ((5, "causal"), (1, "frame"), (243, "centred"), (243, "causal")):
            for tta in ("none", "flip"):
                m = matching(setting(method, "gt", seq_len, alignment, tta))
                assert set(m["input_2d"]) <= {"gt"}, (method, seq_len)
    # and it does get the GT rows of its own method and window
    m = matching(setting("hossain2018", "gt"))
    assert set(m["table"]) == {"Table 1", "Table 3", "Table 5"} and set(m["input_2d"]) == {"gt"}


def test_pretrained_never_matches_fine_tuned():
    for _, r in PUB[PUB["input_2d"] == "sh_ft"].iterrows():
        for method in ("hossain2018", "martinez2017"):
            s = setting(method, "sh_pt_mpii", int(r["seq_len"]), r["alignment"], r["tta"])
            assert any("2D input sh_pt vs sh_ft" in d for d in PM.setting_differences(s, r, ABLATIONS))
    # Table 3's SH row is pre-trained detections on a GT-trained model: a run on sh_pt_mpii still differs
    # in its training 2D (trained on its own keypoints), so it is not matched either
    t3_sh = PUB[(PUB["input_2d"] == "sh_pt") & (PUB["method_id"] == "hossain2018")].iloc[0]
    assert PM.setting_differences(setting("hossain2018", "sh_pt_mpii"), t3_sh, ABLATIONS) == ["training 2D sh_pt vs gt"]


def test_like_for_like_matches():
    m = matching(setting("hossain2018", "sh_ft_h36m"))
    assert set(zip(m["baseline"], m["table"])) == {("hossain2018", "Table 1"), ("hossain2018", "Table 2"),
                                                   ("hossain2018", "Table 4"),
                                                   ("hossain2018_corrected", "Actual_result.png"),
                                                   ("pavllo2019", "Table 1")}
    assert set(m.loc[m["baseline"] == "pavllo2019", "value"]) == {58.3, 44.1}  # the corrected numbers Pavllo quotes
    m = matching(setting("martinez2017", "sh_ft_h36m", 1, "frame"))
    assert set(m["method_id"]) == {"martinez2017"} and {62.9, 47.7} <= set(m["value"])
    # VideoPose3D 243 frames, centred, flip TTA on CPN (Mask R-CNN boxes): only the 46.8 / 36.5 rows
    m = matching(setting("pavllo2019", "cpn_ft_h36m_dbb", 243, "centred", "flip"))
    assert sorted(m.loc[m["slice"] == "action_mean", "value"]) == [36.5, 46.8] and len(m) == 32
    m = matching(setting("pavllo2019", "cpn_ft_h36m_dbb", 243, "causal", "flip"))
    assert sorted(m.loc[m["slice"] == "action_mean", "value"]) == [38.1, 49.0]
    assert matching(setting("pavllo2019", "cpn_ft_h36m_dbb", 243, "centred", "none")).empty  # TTA differs
    assert matching(setting("pavllo2019", "cpn_ft_h36m_dbb", 81, "centred", "flip")).empty  # 81f rows: GT boxes
    m = matching(setting("pavllo2019", "gt", 243, "centred", "none"))
    assert m["value"].tolist() == [37.8]  # Table 5, no TTA


def test_variants_and_noise_must_match():
    t4 = PUB[PUB["table"] == "Table 4"].set_index("variant", drop=False)
    assert PM.setting_differences(setting(variant="no_dropout"), t4.loc["no_dropout"], ABLATIONS) == []
    diffs = PM.setting_differences
    assert diffs(setting(variant="no_dropout"), t4.loc["full"], ABLATIONS) == ["variant no_dropout vs full"]
    assert diffs(setting(variant="full"), t4.loc["no_dropout"], ABLATIONS) == ["variant full vs no_dropout"]
    assert diffs(setting(variant="dropout=0"), t4.loc["full"], ABLATIONS)  # a toggled run is no full model
    m = matching(setting("hossain2018", "gt", test_noise=10.0))
    assert m["value"].tolist() == [49.41]
    assert matching(setting("hossain2018", "gt", test_noise=7.0)).empty


def test_bug_flags_name_the_correction():
    t1 = PUB[(PUB["table"] == "Table 1") & (PUB["baseline"] == "hossain2018") & (PUB["slice"] == "action_mean")]
    sh = t1[(t1["method_id"] == "hossain2018") & (t1["input_2d"] == "sh_ft")].iloc[0]
    gt = t1[(t1["method_id"] == "hossain2018") & (t1["input_2d"] == "gt")].iloc[0]
    assert PM.bug_flag(sh, 58.25) == "BUGGY EVALUATION: corrected number in hossain2018_corrected = 58.25 mm"
    assert "no corrected number" in PM.bug_flag(gt)
    assert PM.bug_flag(t1[t1["method_id"] == "martinez2017"].iloc[0]) == ""
    assert PM.bug_flag(PUB[PUB["baseline"] == "hossain2018_corrected"].iloc[0]) == ""


def test_measured_averaging_follows_the_published_row():
    assert PM.measured_slices({"within_action": "videos"})[:2] == ("action_video", "video_mean")
    assert PM.measured_slices({"within_action": "frames"})[:2] == ("action", "action_mean")
    assert "not stated" in PM.measured_slices({"within_action": "unknown"})[2]


def test_score_emits_both_averagings_by_hand():
    # action 'Walk': video A (3 frames, 1 mm each) and video B (1 frame, 5 mm); action 'Sit': one video, 2 mm
    n = 5
    target = np.zeros((n, 17, 3), np.float32)
    pred = np.zeros((n, 17, 3), np.float32)
    pred[:3, 1] = [17.0, 0, 0]  # 1 mm (17 mm on one of 17 joints)
    pred[3, 1] = [3 * 17.0, 4 * 17.0, 0]  # 5 mm
    pred[4, 1] = [34.0, 0, 0]  # 2 mm
    p = Predictions(np.array(["S9"] * 5), np.array(["Walk 1", "Walk 1", "Walk 1", "Walk 2", "Sit"]), np.zeros(5, int),
                    np.array([0, 1, 2, 0, 0]), pred, target)
    rows = {(r["slice_type"], r["slice"]): r["value"] for r in score(p, video_mean=True, per_joint=False)
            if r["metric"] == "mpjpe"}
    assert rows[("action", "Walk")] == pytest.approx((3 * 1 + 5) / 4)  # frame-weighted: 2.0
    assert rows[("action_video", "Walk")] == pytest.approx((1 + 5) / 2)  # video-weighted: 3.0
    assert rows[("action_video", "Sit")] == pytest.approx(2.0) == rows[("action", "Sit")]
    assert rows[("all", "action_mean")] == pytest.approx((2.0 + 2.0) / 2)
    assert rows[("all", "video_mean")] == pytest.approx((3.0 + 2.0) / 2)
    assert not any(k[0] == "action_video" for k in (
        (r["slice_type"], r["slice"]) for r in score(p, video_mean=False, per_joint=False)))


def _setting_of(suite: str, preset: str, **overrides) -> PM.SuiteSetting:
    from liftbench.suites import expand, load_suite

    specs = expand(load_suite(suite), preset, overrides=overrides or None)
    return PM.suite_setting(suite, preset, [(s.variant, s.axis_value, s.config) for s in specs])


def test_banner_from_the_resolved_configs_against_the_declared_setting():
    exact = _setting_of("ablation", "paper")
    assert exact.banner is None and "Table 4" in exact.reproduces and exact.differences == ()
    # a paper preset with its keypoints, recipe or subset overridden is no longer the paper's table
    for overrides, needle in (({"data.keypoints": "gt"}, "data.keypoints gt (preset: sh_ft_h36m)"),
                              ({"train.epochs": 3}, "train.epochs 3 (preset: 100)"),
                              ({"data.subset": 0.5}, "data.subset 0.5 (preset: 1.0)"),
                              ({"data.name": "mocap-mini"}, "data.name mocap-mini (preset: h36m)")):
        s = _setting_of("ablation", "paper", **overrides)
        assert s.reproduces == "" and needle in s.banner, overrides
        assert s.banner.startswith("Note: not the paper's recipe/data, so rankings may not transfer (preset 'paper' "
                                   "declares the setting of Hossain & Little 2018, Table 4") and "\n" not in s.banner
    for name in ("ablation", "noise", "seqlen", "jitter", "tables"):  # every smoke preset says what it reduces
        s = _setting_of(name, "smoke")
        assert "preset 'smoke' is a reduced recipe" in s.banner and "data mocap-mini, not Human3.6M" in s.banner
        assert "(paper " in s.banner and s.reproduces == ""
    for name, preset in (("noise", "paper"), ("seqlen", "paper"), ("tables", "gt"), ("tables", "sh"),
                         ("jitter", "paper")):
        assert _setting_of(name, preset).banner is None, (name, preset)
    unknown = PM.suite_setting("ablation", "paper", [("full", None, None)])
    assert "resolved config unknown" in unknown.banner and unknown.reproduces == ""
    assert "mocap-mini" in PM.recipe_banner({"paper": "Table 4"}, "paper", "mocap-mini")
    assert PM.recipe_banner({"paper": "Table 4"}, "paper", "h36m") is None


def test_paper_presets_run_the_tables_setting():
    from liftbench.suites import expand, load_suite

    cfg = {s.variant: s.config for s in expand(load_suite("ablation"), "paper")}
    assert all(c.data.name == "h36m" and c.data.keypoints == "sh_ft_h36m" for c in cfg.values())
    assert PM.recipe_differences(cfg["full"]) == []  # the paper's recipe exactly
    noise = expand(load_suite("noise"), "paper")
    assert all(s.config.data.keypoints == "gt" and s.config.data.train_noise == 0 for s in noise)
    assert noise[0].test_noise == (0.0, 5.0, 10.0, 15.0, 20.0)
    tables = load_suite("tables")
    assert {s.config.data.keypoints for s in expand(tables, "gt")} == {"gt"}
    assert {s.config.data.keypoints for s in expand(tables, "sh")} == {"sh_ft_h36m"}


def test_recipe_differences_of_a_reduced_run():
    name = lifter_for("hossain2018")
    cfg = resolve_config(name, options={"data.name": "mocap-mini"}, overrides={"hidden_size": 256, "train.epochs": 3})
    diffs = PM.recipe_differences(cfg)
    assert "data mocap-mini, not Human3.6M" in diffs and "hidden_size 256 (paper 1024)" in diffs
    assert any(d.startswith("epochs 3") for d in diffs)
    assert PM.run_banner(diffs).startswith("Note: not the paper's recipe/data")
    assert PM.run_banner([]) is None


def _h36m_videos(drop_take=("S11", "Directions"), drop_camera=None):
    groups = ["Directions", "Discussion", "Eating", "Greeting", "Phoning", "Photo", "Posing", "Purchases", "Sitting",
              "SittingDown", "Smoking", "Waiting", "WalkDog", "Walking", "WalkTogether"]
    out = []
    for subject in ("S9", "S11"):
        for g in groups:
            for take in (g, f"{g} 1"):
                if (subject, take) == drop_take:
                    continue
                for cam in range(4):
                    if (subject, take, cam) != drop_camera:
                        out.append((subject, take, cam, 100 + cam))
    return out


def test_card_counts_per_action_with_the_missing_s11_directions_take():
    counts = count_test_set(_h36m_videos(), "h36m")
    assert counts["videos_expected"] == 240 and counts["videos"] == 236
    groups = counts["per_action_group"]
    assert groups["Directions"] == {"videos": 12, "frames": 3 * 406, "takes": 3, "videos_expected": 16}
    assert groups["Walking"] == {"videos": 16, "frames": 4 * 406, "takes": 4, "videos_expected": 16}
    assert counts["frames"] == 14 * 4 * 406 + 3 * 406
    assert len(counts["absent"]) == 1 and counts["absent"][0].startswith("S11 Directions: 1 of 2 takes absent")
    counts = count_test_set(_h36m_videos(drop_take=(), drop_camera=("S9", "Eating 1", 2)), "h36m")
    assert counts["videos"] == 239 and counts["per_action_group"]["Eating"]["frames"] == 4 * 406 - 102
    assert counts["absent"] == ["S9 'Eating 1': 1 of 4 cameras absent"]


def test_card_counts_for_another_dataset_are_what_is_present():
    counts = count_test_set([("T1", "Walk a", 0, 10), ("T1", "Walk b", 1, 5), ("T1", "Jump", 0, 7)], "mocap-mini")
    assert counts["per_action_group"] == {"Jump": {"videos": 1, "frames": 7, "takes": 1},
                                          "Walk": {"videos": 2, "frames": 15, "takes": 2}}
    assert "absent" not in counts and "videos_expected" not in counts


def test_training_2d_comes_from_the_run_not_from_the_keypoints_it_was_scored_on():
    # a GT-trained run scored on SH fine-tuned detections is not a model trained on SH (no 58.25 delta) ...
    gt_on_sh = setting("hossain2018", "sh_ft_h36m")
    gt_on_sh = PM.MeasuredSetting(*[getattr(gt_on_sh, f) for f in ("method", "dataset", "keypoints", "train_noise",
                                                                   "test_noise", "seq_len", "alignment", "tta",
                                                                   "variant")], train_keypoints="gt")
    assert matching(gt_on_sh).empty
    corrected = PUB[(PUB["baseline"] == "hossain2018_corrected") & (PUB["slice"] == "action_mean")].iloc[0]
    assert PM.setting_differences(gt_on_sh, corrected, ABLATIONS) == ["training 2D gt vs sh_ft"]
    # ... and Table 3's "trained on GT, tested on SH (MPII pre-trained)" row finally can match
    t3 = PM.MeasuredSetting("hossain2018", "h36m", "sh_pt_mpii", 0.0, 0.0, 5, "causal", "none", "full",
                            train_keypoints="gt")
    m = matching(t3)
    assert m["value"].tolist() == [62.43] and m["p2_kind"].tolist() == ["rigid"]
    mlp = PM.MeasuredSetting("martinez2017", "h36m", "sh_pt_mpii", 0.0, 0.0, 1, "frame", "none", "mlp",
                             train_keypoints="gt")
    assert matching(mlp)["value"].tolist() == [60.52, 60.52]  # Hossain's Table 3 and martinez2017.csv quote it


def test_p2_kind_is_matched_like_with_like():
    p2 = PUB[(PUB["protocol"] == "p2") & (PUB["slice"] == "action_mean")]
    rigid = p2[p2["p2_kind"] == "rigid"]
    # Hossain & Little's printed P2 (Table 2's 42.0, Table 3's "Ours") is rigid; the corrected numbers, Martinez
    # and VideoPose3D are similarity
    assert set(rigid["method_id"]) == {"hossain2018"} and 42.0 in set(rigid["value"]) and 31.67 in set(rigid["value"])
    assert set(p2[p2["baseline"] == "hossain2018_corrected"]["p2_kind"]) == {"similarity"}
    assert set(p2[p2["method_id"].isin(["martinez2017", "pavllo2019"])]["p2_kind"]) == {"similarity"}
    assert PM.measured_metric(rigid.iloc[0]) == ("p_mpjpe_rigid", "rigid P2 (as published)")
    sim = p2[p2["baseline"] == "hossain2018_corrected"].iloc[0]
    assert PM.measured_metric(sim) == ("p_mpjpe", "similarity P2 (as published)")
    assert PM.measured_metric({"metric": "mpjpe", "p2_kind": ""}) == ("mpjpe", "")
    moreno = p2[p2["method_id"] == "moreno_noguer2017"].iloc[0]
    assert "P2 alignment (rigid or similarity) not stated by the paper" in PM.setting_differences(
        setting("moreno_noguer2017", "gt", 1, "frame"), moreno, ABLATIONS)


def test_published_numbers_print_as_printed():
    assert [PM.fmt_published(v) for v in (58.25, 51.9, 44.09)] == ["58.25", "51.9", "44.09"]
    assert PM.fmt_published(62.0) == "62.0" and PM.fmt_published(float("nan")) == "—"
    sh = PUB[(PUB["table"] == "Table 1") & (PUB["method_id"] == "hossain2018") & (PUB["input_2d"] == "sh_ft")].iloc[0]
    assert PM.bug_flag(sh, 58.25).endswith("= 58.25 mm")


def test_claim_setting_differences_read_the_rows():
    rows = pd.DataFrame({"dataset": ["h36m", "h36m"], "train_keypoints": ["gt", "gt"],
                         "test_keypoints": ["sh_pt_mpii", "sh_pt_mpii"], "train_noise": [0.0, 0.0]})
    assert PM.claim_setting_differences({"dataset": "h36m", "train_2d": "gt", "test_2d": "sh_pt", "train_noise": "0"},
                                        rows) == []
    diffs = PM.claim_setting_differences({"dataset": "h36m", "train_2d": "sh_ft", "test_2d": "sh_ft"}, rows)
    assert diffs == ["training 2D gt vs sh_ft", "test 2D sh_pt vs sh_ft"]
    assert PM.scope_of(diffs, rows) == "on these keypoints (trained on gt, tested on sh_pt_mpii)"
    mini = rows.assign(dataset="mocap-mini", train_keypoints="gt", test_keypoints="gt")
    diffs = PM.claim_setting_differences({"dataset": "h36m", "train_2d": "sh_ft"}, mini)
    assert diffs[0] == "data mocap-mini vs h36m" and PM.scope_of(diffs, mini) == "on mocap-mini"
    assert PM.data_label("mocap-mini") == "mocap-mini (~40 s, one retargeted body; not Human3.6M)"
    noisy = rows.assign(train_noise=5.0)
    assert PM.claim_setting_differences({"train_noise": "0"}, noisy) == ["training noise 5 vs 0 px"]


# ------------------------------------------------------------------ clip lifters: MotionBERT and MixSTE (issue 23)

def clip_setting(method: str, keypoints: str, seq_len: int = 243, convention: str = "liftbench",
                 variant: str = "full") -> PM.MeasuredSetting:
    return PM.MeasuredSetting(method, "h36m", keypoints, 0.0, 0.0, seq_len, "clip", "flip", variant,
                              convention=convention)


def test_clip_lifters_match_their_published_numbers_only_under_their_own_convention():
    mb, mx = lifter_contract(lifter_for("zhu2023")), lifter_contract(lifter_for("zhang2022"))
    assert mb.window.alignment == mx.window.alignment == "clip"  # the measured rows' alignment is the published one
    # every frame once (liftbench's rule) is not the frame set MotionBERT's 39.2 was scored on: no delta, and the
    # difference names the command that scores the same predictions its way
    assert matching(clip_setting("zhu2023", "sh_ft_h36m")).empty
    row = PUB[(PUB["method_id"] == "zhu2023") & (PUB["variant"] == "full")].iloc[0]
    assert PM.setting_differences(clip_setting("zhu2023", "sh_ft_h36m"), row, ABLATIONS) == [
        "evaluation convention liftbench vs motionbert (liftbench evaluate --convention motionbert scores the same "
        "predictions that way)"]
    m = matching(clip_setting("zhu2023", "sh_ft_h36m", convention="motionbert"))
    assert sorted(zip(m["metric"], m["slice"], m["value"])) == [
        ("mpjpe", "action_mean", 39.2), ("mpjpe", "action_mean", 39.2), ("mpjpe", "frame_mean", 39.8),
        ("p_mpjpe", "action_mean", 33.4)]  # scratch only: the fine-tuned 37.2 / 37.5 / 37.7 were pre-trained
    assert matching(clip_setting("zhu2023", "cpn_ft_h36m_dbb", convention="motionbert")).empty  # its 2D is SH
    assert matching(clip_setting("zhu2023", "sh_ft_h36m", 81, convention="motionbert")).empty  # shorter clips
    m = matching(clip_setting("zhang2022", "cpn_ft_h36m_dbb", convention="mixste"))
    assert sorted(m["value"]) == [32.6, 40.9]
    assert matching(clip_setting("zhang2022", "cpn_ft_h36m_dbb", 81, convention="mixste"))["value"].tolist() == [42.4]
    assert matching(clip_setting("zhang2022", "gt", convention="mixste"))["value"].tolist() == [21.6]
    assert matching(clip_setting("zhang2022", "cpn_ft_h36m_dbb")).empty  # liftbench's frame set vs MixSTE's
    # another codebase's convention never stands in for this one's
    assert matching(clip_setting("zhang2022", "cpn_ft_h36m_dbb", convention="motionbert")).empty


def test_frame_sets_of_conventions():
    assert PM.frame_set_of("") == PM.frame_set_of("liftbench") == PM.frame_set_of("videopose3d") == "liftbench"
    assert PM.frame_set_of("motionbert") == "motionbert" and PM.frame_set_of("mixste") == "mixste"
    assert PM.frame_set_of("nosuch") == "nosuch"
    # a VideoPose3D run scored under its own convention (every frame once) still matches VideoPose3D's rows
    s = PM.MeasuredSetting("pavllo2019", "h36m", "cpn_ft_h36m_dbb", 0.0, 0.0, 243, "centred", "flip", "full",
                           convention="videopose3d")
    assert sorted(matching(s).loc[lambda d: d["slice"] == "action_mean", "value"]) == [36.5, 46.8]


def test_partial_rows_are_never_the_whole_test_set():
    base = {"metric": "mpjpe", "slice": "action_mean", "n_frames": 90, "n_frames_expected": 100}
    rows = pd.DataFrame([{**base, "convention": "motionbert"}, {**base, "convention": "liftbench", "n_frames": 100}])
    assert PM.partial_test_of(rows) == ""  # MotionBERT's smaller frame set is by design, not a test subset
    assert PM.partial_test_of(rows.assign(n_frames=90)) == "test subset (scored 90 of 100 frames)"
    assert PM.partial_test_of(rows.assign(coverage="partial")).startswith("partial coverage")
