"""Claim checks: intervals by hand, the verdict words, Welch vs paired, slopes and their interaction, the
'largest' claim, seeds needed for a declared effect, Holm, zero spread, setting gates and the claims file."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from liftbench.errors import DataError
from liftbench.papers import claims as C
from liftbench.papers import stats as S
from liftbench.papers.claim_table import claim_cells, claim_notes, paper_cell, verdict_cell
from liftbench.suites import load_suite

T_975_2DF = 4.302652729749464  # t(0.975, 2), from any t table (4.303)
T_975_1DF = 12.706204736174707  # t(0.975, 1)
SH = {"dataset": "h36m", "train_keypoints": "sh_ft_h36m", "test_keypoints": "sh_ft_h36m", "keypoints": "sh_ft_h36m"}
MINI = {"dataset": "mocap-mini", "train_keypoints": "gt", "test_keypoints": "gt", "keypoints": "gt"}


def _rows(values: dict[str, dict[int, float]], metric: str = "mpjpe", axis: str = "variant", setting=None,
          **extra) -> pd.DataFrame:
    """Per-seed headline rows: {condition value: {seed: value}} along ``axis`` (variant or test_noise)."""
    setting = setting or MINI
    out = []
    for cond, per_seed in values.items():
        for seed, v in per_seed.items():
            variant = cond if axis == "variant" else extra.get("variant", "seq2seq")
            out.append({"status": "ok", "metric": metric, "slice_type": "all", "slice": "action_mean", "seed": seed,
                        "variant": variant, "test_noise": cond if axis == "test_noise" else 0.0, "seq_len": 5,
                        "value": v, "train_noise": 0.0, "run_id": f"{variant}-{seed}", **setting})
    # distractors that must be ignored: another slice, another metric, a failed row
    out.append({"status": "ok", "metric": metric, "slice_type": "all", "slice": "frame_mean", "seed": 0,
                "variant": "full", "test_noise": 0.0, "seq_len": 5, "value": 1e6, **setting})
    out.append({"status": "ok", "metric": "p_mpjpe" if metric == "mpjpe" else "mpjpe", "slice_type": "all",
                "slice": "action_mean", "seed": 0, "variant": "full", "test_noise": 0.0, "seq_len": 5, "value": 1e6,
                **setting})
    out.append({"status": "error", "metric": metric, "slice_type": "all", "slice": "action_mean", "seed": 9,
                "variant": "full", "test_noise": 0.0, "seq_len": 5, "value": float("nan"), **setting})
    return pd.DataFrame(out)


def _claim(**kw) -> C.Claim:
    base = dict(id="x", suite="ablation", text="w/o residual > full", metric="mpjpe", kind="difference",
                a="variant=no_residual", b="variant=full", where="test_noise=0", expected="greater",
                setting="dataset=h36m,train_2d=sh_ft,test_2d=sh_ft", family="Table 4")
    return C.Claim(**{**base, **kw})


# ------------------------------------------------------------------------------------------ intervals

def test_same_direction_with_a_hand_computed_paired_interval_and_p_value():
    rows = _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0}, "no_residual": {0: 60.0, 1: 63.0, 2: 61.0}})
    r = C.check_claim(_claim(), rows)
    # differences 10, 11, 10: mean 31/3, sd sqrt(1/3), half-width t(0.975, 2) * sd / sqrt(3) = 4.3027 / 3
    assert r.test == "paired t" and (r.n_a, r.n_b) == (3, 3)
    assert r.difference == pytest.approx(31 / 3)
    assert r.ci_low == pytest.approx(31 / 3 - T_975_2DF / 3) and r.ci_high == pytest.approx(31 / 3 + T_975_2DF / 3)
    t_stat = (31 / 3) / (math.sqrt(1 / 3) / math.sqrt(3))
    assert r.p_value == pytest.approx(2 * stats.t.sf(t_stat, 2))
    assert r.p_value == pytest.approx(stats.ttest_rel([60, 63, 61], [50, 52, 51]).pvalue)  # scipy agrees
    assert r.outcome == "same" and r.seeds_needed is None


def test_words_are_direction_and_significance_only_and_scoped_outside_the_paper_setting():
    rows = _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0}, "no_residual": {0: 60.0, 1: 63.0, 2: 61.0}})
    outside = C.check_claim(_claim(), rows)  # mocap-mini rows, a claim about Human3.6M SH detections
    assert outside.differences and outside.scope == "on mocap-mini"
    assert verdict_cell(outside) == "same direction on mocap-mini (p < 0.05)"
    assert "reproduced" not in " ".join(claim_cells(outside))
    inside = C.check_claim(_claim(), _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0},
                                            "no_residual": {0: 60.0, 1: 63.0, 2: 61.0}}, setting=SH))
    assert inside.differences == () and inside.scope == "" and verdict_cell(inside) == "same direction (p < 0.05)"
    rows = _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0}, "no_residual": {0: 45.0, 1: 46.0, 2: 45.5}})
    r = C.check_claim(_claim(), rows)
    assert r.outcome == "opposite" and r.ci_high < 0 and verdict_cell(r) == "opposite on mocap-mini (p < 0.05)"
    assert C.check_claim(_claim(expected="less"), rows).outcome == "same"  # the same data support the opposite claim


def test_not_significant_gives_the_seeds_needed_for_the_papers_delta_not_the_observed_one():
    rows = _rows({"full": {0: 50.0, 1: 50.0, 2: 50.0}, "no_residual": {0: 51.0, 1: 49.0, 2: 52.0}})
    claim = _claim(paper_difference=1.5, paper_basis="printed_buggy", min_effect=1.0)
    r = C.check_claim(claim, rows)
    d, sd = 2 / 3, math.sqrt(7 / 3)  # differences 1, -1, 2
    assert r.difference == pytest.approx(d) and r.interval.sd == pytest.approx(sd)
    half = T_975_2DF * sd / math.sqrt(3)
    assert (r.ci_low, r.ci_high) == (pytest.approx(d - half), pytest.approx(d + half))
    assert r.outcome == "not significant" and r.effect == 1.5 and r.effect_source == "the paper's Δ"

    def enough(k: int, effect: float) -> bool:  # the formula, recomputed here
        return k >= (stats.t.ppf(0.975, k - 1) + stats.t.ppf(0.8, k - 1)) ** 2 * sd ** 2 / effect ** 2

    n = r.seeds_needed
    assert enough(n, 1.5) and not enough(n - 1, 1.5) and n > 3
    assert f"≈{n} seeds to detect the paper's Δ (+1.5 mm) at this spread" in verdict_cell(r)
    # without a printable paper Δ, the declared minimum effect (never the observed 0.67)
    r = C.check_claim(_claim(paper_difference=6.3, paper_basis="trend", min_effect=1.0), rows)
    assert r.effect == 1.0 and r.effect_source == "the declared minimum effect"
    assert enough(r.seeds_needed, 1.0) and not enough(r.seeds_needed - 1, 1.0)
    assert "a 1 mm difference (the declared minimum effect)" in verdict_cell(r)
    # with neither, no count at all
    bare = C.check_claim(_claim(), rows)
    assert bare.seeds_needed is None and "to detect" not in verdict_cell(bare)


def test_opposite_sign_without_significance_is_said_with_what_more_seeds_would_do():
    rows = _rows({"full": {0: 50.0, 1: 50.0, 2: 50.0}, "no_residual": {0: 49.0, 1: 51.0, 2: 48.0}})
    r = C.check_claim(_claim(min_effect=1.0), rows)
    text = verdict_cell(r)
    assert text.startswith("not significant on mocap-mini at 3 seeds, observed Δ has the opposite sign")
    assert "more seeds may confirm the opposite instead" in text


def test_welch_when_the_sides_do_not_share_seeds_and_its_seeds_are_per_side():
    rows = _rows({"no_residual": {0: 10.0, 1: 12.0, 2: 14.0}, "full": {3: 5.0, 4: 7.0}})
    r = C.check_claim(_claim(min_effect=0.5), rows)
    # a: mean 12, var 4, n 3; b: mean 6, var 2, n 2
    se = math.sqrt(4 / 3 + 2 / 2)
    dof = (4 / 3 + 1) ** 2 / ((4 / 3) ** 2 / 2 + 1 ** 2 / 1)
    assert dof == pytest.approx(2.882352941)
    half = stats.t.ppf(0.975, dof) * se
    assert r.test == "Welch t" and r.difference == pytest.approx(6.0)
    assert (r.ci_low, r.ci_high) == (pytest.approx(6 - half), pytest.approx(6 + half))
    welch = stats.ttest_ind([10, 12, 14], [5, 7], equal_var=False)
    assert r.p_value == pytest.approx(welch.pvalue)
    assert r.outcome == ("same" if 6 - half > 0 else "not significant")
    rows = _rows({"no_residual": {0: 10.0, 1: 14.0, 2: 9.0}, "full": {3: 5.0, 4: 15.0}})
    r = C.check_claim(_claim(min_effect=0.5), rows)
    assert r.outcome == "not significant" and " seeds per side to detect" in verdict_cell(r)


def test_zero_spread_is_not_testable_for_any_nonzero_difference():
    rows = _rows({"full": {0: 50.0, 1: 50.0, 2: 50.0}, "no_residual": {0: 53.0, 1: 53.0, 2: 53.0}})
    r = C.check_claim(_claim(), rows)  # identical seeds: d = 3 every time, sd 0: the old code called it reproduced
    assert r.outcome == "not testable" and math.isnan(r.ci_low) and r.difference == pytest.approx(3.0)
    assert "not testable" in verdict_cell(r) and "no spread" in verdict_cell(r)
    w = S.welch([5.0, 5.0], [2.0, 2.0, 2.0])
    assert not w.testable and w.difference == 3.0
    assert S.paired([1.0, 2.0]).testable and not S.paired([2.0, 2.0]).testable


def test_slope_claim_uses_per_seed_least_squares_slopes():
    values = {0.0: {0: 30.0, 1: 31.0, 2: 29.0}, 10.0: {0: 40.0, 1: 42.0, 2: 41.0}, 20.0: {0: 50.0, 1: 51.0, 2: 53.0}}
    rows = _rows(values, metric="p_mpjpe", axis="test_noise")
    claim = C.Claim("s", "noise", "error grows with sigma", "p_mpjpe", "slope", "variant=seq2seq", "", "", "greater",
                    axis="test_noise")
    r = C.check_claim(claim, rows)
    slopes = np.array([1.0, 1.0, 1.2])  # by hand: (y(20) - y(0)) / 20 for three equally spaced points
    half = T_975_2DF * slopes.std(ddof=1) / math.sqrt(3)
    assert r.difference == pytest.approx(slopes.mean())
    assert (r.ci_low, r.ci_high) == (pytest.approx(slopes.mean() - half), pytest.approx(slopes.mean() + half))
    assert r.outcome == "same" and r.test.startswith("paired t")
    assert claim_cells(r)[4].endswith("mm/px")


def test_slope_interaction_is_the_paired_difference_of_per_seed_slopes():
    seq = _rows({0.0: {0: 30.0, 1: 31.0, 2: 29.0}, 20.0: {0: 74.0, 1: 75.0, 2: 75.0}}, metric="p_mpjpe",
                axis="test_noise", variant="seq2seq")
    mlp = _rows({0.0: {0: 37.0, 1: 36.0, 2: 38.0}, 20.0: {0: 70.0, 1: 69.0, 2: 72.0}}, metric="p_mpjpe",
                axis="test_noise", variant="mlp")
    claim = C.Claim("i", "noise", "seq2seq grows faster", "p_mpjpe", "slope_difference", "variant=seq2seq",
                    "variant=mlp", "", "greater", axis="test_noise")
    r = C.check_claim(claim, pd.concat([seq, mlp], ignore_index=True))
    by_seed = np.array([(74 - 30) / 20 - (70 - 37) / 20, (75 - 31) / 20 - (69 - 36) / 20,
                        (75 - 29) / 20 - (72 - 38) / 20])
    assert r.difference == pytest.approx(by_seed.mean()) and r.n_a == 3
    assert r.interval.sd == pytest.approx(by_seed.std(ddof=1))
    assert r.outcome == "same" and "slope differences" in r.test


def test_largest_compares_with_the_worst_alternative_of_each_seed():
    rows = _rows({"full": {0: 50.0, 1: 50.0}, "no_residual": {0: 70.0, 1: 73.0}, "no_dropout": {0: 60.0, 1: 55.0},
                  "no_layer_norm": {0: 58.0, 1: 65.0}})
    claim = _claim(kind="largest", b="variant=no_dropout|no_layer_norm")
    r = C.check_claim(claim, rows)
    d = np.array([70.0 - 60.0, 73.0 - 65.0])  # per seed: minus the max of the others (60 vs 58; 55 vs 65)
    assert r.difference == pytest.approx(d.mean())
    assert (r.ci_low, r.ci_high) == (pytest.approx(d.mean() - T_975_1DF * d.std(ddof=1) / math.sqrt(2)),
                                     pytest.approx(d.mean() + T_975_1DF * d.std(ddof=1) / math.sqrt(2)))
    r = C.check_claim(_claim(kind="largest", b="variant=no_dropout|no_smoothness"), rows)
    assert r.outcome == "not measured"  # an alternative never ran: the claim cannot be judged


def test_single_seed_has_no_interval_and_missing_conditions_are_not_measured():
    rows = _rows({"full": {0: 50.0}, "no_residual": {0: 60.0}})
    r = C.check_claim(_claim(min_effect=1.0), rows)
    assert r.outcome == "not significant" and verdict_cell(r).startswith("not significant on mocap-mini at 1 seed")
    assert math.isnan(r.ci_low) and r.seeds_needed is None
    r = C.check_claim(_claim(a="variant=no_dropout"), rows)
    assert r.outcome == "not measured" and "no_dropout" in r.detail
    cells = claim_cells(r)
    assert cells[0] == "x" and cells[4] == "—" and cells[8].startswith("not measured")


def test_holm_by_hand_and_within_each_family():
    assert S.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])  # 3·0.01, max(0.03, 2·0.03), max(.., 1·0.04)
    assert S.holm([0.02, float("nan"), 0.5])[0] == pytest.approx(0.04) and math.isnan(S.holm([0.02, float("nan")])[1])


def test_holm_adjusts_the_claims_of_one_table(tmp_path):
    path = tmp_path / "p_claims.csv"
    path.write_text("id,suite,family,text,metric,kind,a,b,where,expected\n"
                    "a,ablation,T4,t,mpjpe,difference,variant=no_residual,variant=full,test_noise=0,greater\n"
                    "b,ablation,T4,t,mpjpe,difference,variant=no_dropout,variant=full,test_noise=0,greater\n"
                    "c,ablation,T1,t,mpjpe,difference,variant=no_dropout,variant=full,test_noise=0,greater\n")
    rows = _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0}, "no_residual": {0: 60.0, 1: 63.0, 2: 61.0},
                  "no_dropout": {0: 51.0, 1: 54.5, 2: 52.2}})
    results = {r.claim.id: r for r in C.check_claims(rows, "ablation", tmp_path)}
    pa, pb = results["a"].p_value, results["b"].p_value
    low, high = sorted([pa, pb])
    assert results["a" if pa < pb else "b"].holm_p == pytest.approx(min(1, 2 * low))
    assert results["b" if pa < pb else "a"].holm_p == pytest.approx(max(min(1, 2 * low), high))
    assert results["c"].holm_p == pytest.approx(results["c"].p_value)  # alone in its family
    assert claim_cells(results["a"])[9].endswith(f"(p_Holm {results['a'].holm_p:.3g})")


# ----------------------------------------------------------------------------------- setting gate

def test_claims_are_gated_by_the_setting_of_the_rows_trained_and_scored_keypoints():
    claim = _claim(paper_difference=6.4, paper_basis="printed_buggy")
    values = {"full": {0: 50.0, 1: 52.0, 2: 51.0}, "no_residual": {0: 57.0, 1: 58.0, 2: 58.5}}
    inside = C.check_claim(claim, _rows(values, setting=SH))
    assert inside.in_paper_setting and paper_cell(inside) == "+6.4 mm (printed; buggy evaluation: a trend)"
    assert inside.paper_inside is True  # 6.4 lies in [+3.9, +8.4]
    # trained on GT, scored on SH detections: another setting (the training 2D is the run's, not the test's)
    gt_trained = C.check_claim(claim, _rows(values, setting={**SH, "train_keypoints": "gt"}))
    assert gt_trained.differences == ("training 2D gt vs sh_ft",) and gt_trained.paper_inside is None
    assert paper_cell(gt_trained) == "— (other setting)"
    assert gt_trained.scope == "on these keypoints (trained on gt, tested on sh_ft_h36m)"
    # a test subset (fewer scored frames than the split) is not the paper's whole test set
    partial = _rows(values, setting=SH).assign(n_frames=100, n_frames_expected=400)
    partial = pd.concat([partial, partial.assign(metric="mpjpe")], ignore_index=True)
    r = C.check_claim(claim, partial)
    assert any("test subset (scored 100 of 400 frames)" in d for d in r.differences)
    # an undeclared setting is never the paper's
    assert C.check_claim(_claim(setting=""), _rows(values, setting=SH)).differences
    notes = claim_notes([gt_trained])
    assert any("training 2D gt vs sh_ft" in n and "no paper Δ" in n for n in notes)


def test_paper_delta_cells_never_show_a_delta_against_an_uncorrected_buggy_value():
    rows = _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0}, "mlp": {0: 57.0, 1: 58.0, 2: 58.5}}, setting=SH)
    base = dict(a="variant=mlp", b="variant=full")
    r = C.check_claim(_claim(**base, paper_difference=4.65, paper_basis="corrected"), rows)
    assert paper_cell(r) == "+4.65 mm (corrected evaluation)"
    r = C.check_claim(_claim(**base, paper_difference=6.3, paper_basis="trend"), rows)
    assert paper_cell(r) == "> 0 (direction only: buggy value, never corrected)"
    assert "6.3" not in " ".join(claim_cells(r))
    assert r.paper_inside is None and r.claim.paper_shown is None


# ------------------------------------------------------------------------------------- claims file

def test_shipped_claims_name_conditions_their_suites_run():
    claims = C.load_claims()
    assert {s for c in claims for s in c.suites} == {"ablation", "noise", "seqlen", "jitter", "tables"}
    ids = {c.id for c in claims}
    # the paper's real claims: smoothness as jitter, the noise crossover as slopes, Tables 1/2, Table 4's ordering
    assert {"S-jitter", "S-accel", "S-vs-mlp", "H3-slopes", "H3-sh-vs-mlp", "H1-vs-mlp", "H2-vs-mlp", "H1-gt-vs-mlp",
            "H4-residual-largest"} <= ids
    by_id = {c.id: c for c in claims}
    assert by_id["H1-vs-mlp"].paper_shown == 4.65 and by_id["H1-vs-mlp"].note  # corrected, and the note says why
    assert by_id["H2-vs-mlp"].paper_shown == pytest.approx(47.7 - 44.09)
    assert by_id["H1-gt-vs-mlp"].paper_shown is None and by_id["H3-slopes"].paper_shown is None  # buggy, uncorrected
    assert by_id["H3-slopes"].paper_difference == pytest.approx(0.57)  # 2.166 - 1.592 (2.17 vs 1.59 rounded)
    assert "sanity" in by_id["H3-grows"].text
    for c in claims:
        for suite_name in c.suites:
            suite = load_suite(suite_name)
            variants = {v["name"] for v in suite.raw["variants"]}
            if c.kind.startswith("slope"):
                assert c.axis in ("test_noise", "seq_len")
            for side in (c.a, c.b, c.where):
                for part in filter(None, side.split(",")):
                    key, _, value = part.partition("=")
                    for v in value.split("|"):
                        if key == "variant":
                            assert v in variants, (c.id, suite_name, v)
                        if key == "seq_len" and "axis" in suite.raw:
                            assert int(v) in suite.raw["axis"]["values"], (c.id, v)
                        if key == "test_noise":
                            assert float(v) in suite.test_noise, (c.id, v)


def test_table3_slopes_in_the_claims_file_are_the_least_squares_slopes_of_table3():
    sigma = np.array([0, 5, 10, 15, 20.0])
    ours = np.polyfit(sigma, [31.67, 37.46, 49.41, 61.80, 73.65], 1)[0]
    martinez = np.polyfit(sigma, [37.10, 46.65, 52.84, 59.97, 70.24], 1)[0]
    assert (round(ours, 2), round(martinez, 2)) == (2.17, 1.59)
    by_id = {c.id: c for c in C.load_claims("noise")}
    assert by_id["H3-slopes"].paper_difference == pytest.approx(round(ours - martinez, 2))


@pytest.mark.parametrize("line, match", [
    ("x,ablation,t,mpjpe,ratio,variant=a,variant=b,,greater", "kind must be one of difference, largest"),
    ("x,ablation,t,mpjpe,difference,variant=a,variant=b,,bigger", "expected one of greater, less"),
    ("x,ablation,t,mpjpe,difference,variant=a,,,greater", "needs an id, condition a and"),
    ("x,ablation,t,mpjpe,difference,variant,variant=b,,greater", "must read column=value"),
    ("x,ablation,t,mpjpe,slope_difference,variant=a,variant=b,,greater", "needs its axis"),
    ("x,ablation,t,mpjpe,largest,variant=a,variant=b,,greater", "alternatives in b"),
])
def test_malformed_claims_file_names_file_and_line(tmp_path, line, match):
    path = tmp_path / "p_claims.csv"
    path.write_text("id,suite,text,metric,kind,a,b,where,expected\n" + line + "\n")
    with pytest.raises(DataError, match=match) as err:
        C.read_claims(path)
    assert "p_claims.csv line 2" in str(err.value)


@pytest.mark.parametrize("extra, match", [("setting,h36m", "must read column=value"),
                                          ("setting,method=x", "unknown setting key"),
                                          ("paper_basis,invented", "paper_basis must be one of"),
                                          ("min_effect,-1", "min_effect must be a finite number > 0")])
def test_malformed_optional_columns(tmp_path, extra, match):
    column, value = extra.split(",")
    path = tmp_path / "p_claims.csv"
    path.write_text(f"id,suite,text,metric,kind,a,b,where,expected,{column}\n"
                    f"x,ablation,t,mpjpe,difference,variant=a,variant=b,,greater,{value}\n")
    with pytest.raises(DataError, match=match):
        C.read_claims(path)


def test_a_negligible_effect_is_not_given_an_absurd_seed_count():
    assert S.seeds_needed(0.02, 1.8) > C.MANY_SEEDS  # ~ (2.8 * 90)^2 seeds: the cell says "> 100 seeds"
    assert S.seeds_needed(5.0, 1.0) < 10
    assert S.seeds_needed(None, 1.0) is None and S.seeds_needed(1.0, float("nan")) is None


def test_a_paper_delta_the_seeds_could_already_detect_is_said_so():
    rows = _rows({"full": {0: 50.0, 1: 50.0, 2: 50.0}, "no_residual": {0: 51.0, 1: 49.0, 2: 52.0}})
    r = C.check_claim(_claim(paper_difference=50.5, paper_basis="printed_buggy"), rows)
    assert r.outcome == "not significant" and r.seeds_needed == 2
    assert "3 seeds already give 80 % power to detect the paper's Δ (+50.5 mm) at this spread" in verdict_cell(r)
