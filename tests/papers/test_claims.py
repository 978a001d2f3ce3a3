"""Claim checks: intervals by hand, the three verdicts, Welch vs paired, slopes, seeds needed, claim files."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from liftbench.errors import DataError
from liftbench.papers import claims as C
from liftbench.suites import load_suite

T_975_2DF = 4.302652729749464  # t(0.975, 2), from any t table (4.303)


def _rows(values: dict[str, dict[int, float]], metric: str = "mpjpe", axis: str = "variant") -> pd.DataFrame:
    """Per-seed headline rows: {condition value: {seed: value}} along ``axis``."""
    out = []
    for cond, per_seed in values.items():
        for seed, v in per_seed.items():
            out.append({"status": "ok", "metric": metric, "slice_type": "all", "slice": "action_mean", "seed": seed,
                        "variant": cond if axis == "variant" else "seq2seq", "test_noise": cond if axis == "test_noise" else 0.0,
                        "seq_len": 5, "value": v})
    # distractors that must be ignored: another slice, another metric, a failed row
    out.append({"status": "ok", "metric": metric, "slice_type": "all", "slice": "frame_mean", "seed": 0,
                "variant": "full", "test_noise": 0.0, "seq_len": 5, "value": 1e6})
    out.append({"status": "ok", "metric": "p_mpjpe" if metric == "mpjpe" else "mpjpe", "slice_type": "all",
                "slice": "action_mean", "seed": 0, "variant": "full", "test_noise": 0.0, "seq_len": 5, "value": 1e6})
    out.append({"status": "error", "metric": metric, "slice_type": "all", "slice": "action_mean", "seed": 9,
                "variant": "full", "test_noise": 0.0, "seq_len": 5, "value": float("nan")})
    return pd.DataFrame(out)


def _claim(**kw) -> C.Claim:
    base = dict(id="x", suite="ablation", text="w/o residual > full", metric="mpjpe", kind="difference",
                a="variant=no_residual", b="variant=full", where="test_noise=0", expected="greater")
    return C.Claim(**{**base, **kw})


def test_reproduced_with_a_hand_computed_paired_interval():
    rows = _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0}, "no_residual": {0: 60.0, 1: 63.0, 2: 61.0}})
    r = C.check_claim(_claim(), rows)
    # differences 10, 11, 10: mean 31/3, sd sqrt(1/3), half-width t(0.975, 2) * sd / sqrt(3) = 4.3027 / 3
    assert r.test == "paired t" and (r.n_a, r.n_b) == (3, 3)
    assert r.difference == pytest.approx(31 / 3)
    assert r.ci_low == pytest.approx(31 / 3 - T_975_2DF / 3) and r.ci_high == pytest.approx(31 / 3 + T_975_2DF / 3)
    assert r.verdict == "reproduced" and r.seeds_needed is None


def test_not_significant_gives_the_seeds_needed():
    rows = _rows({"full": {0: 50.0, 1: 50.0, 2: 50.0}, "no_residual": {0: 51.0, 1: 49.0, 2: 52.0}})
    r = C.check_claim(_claim(), rows)
    d, sd = 2 / 3, math.sqrt(7 / 3)  # differences 1, -1, 2
    assert r.difference == pytest.approx(d)
    half = T_975_2DF * sd / math.sqrt(3)
    assert (r.ci_low, r.ci_high) == (pytest.approx(d - half), pytest.approx(d + half))
    assert r.verdict == "not significant at 3 seeds"
    n = r.seeds_needed

    def enough(k: int) -> bool:  # the formula, recomputed here
        return k >= (stats.t.ppf(0.975, k - 1) + stats.t.ppf(0.8, k - 1)) ** 2 * sd ** 2 / d ** 2

    assert enough(n) and not enough(n - 1)
    # and close to the normal approximation (1.96 + 0.84)^2 s^2 / d^2 = 41.2, never below it
    assert 41 <= n <= 46


def test_contradicted_when_the_interval_is_on_the_other_side():
    rows = _rows({"full": {0: 50.0, 1: 52.0, 2: 51.0}, "no_residual": {0: 45.0, 1: 46.0, 2: 45.5}})
    r = C.check_claim(_claim(), rows)
    assert r.verdict == "contradicted" and r.ci_high < 0
    # the same data support the opposite claim
    assert C.check_claim(_claim(expected="less"), rows).verdict == "reproduced"


def test_opposite_sign_without_significance_is_said():
    rows = _rows({"full": {0: 50.0, 1: 50.0, 2: 50.0}, "no_residual": {0: 49.0, 1: 51.0, 2: 48.0}})
    r = C.check_claim(_claim(), rows)
    assert r.verdict.startswith("not significant at 3 seeds") and "opposite sign" in r.verdict


def test_welch_when_the_sides_do_not_share_seeds():
    rows = _rows({"no_residual": {0: 10.0, 1: 12.0, 2: 14.0}, "full": {3: 5.0, 4: 7.0}})
    r = C.check_claim(_claim(), rows)
    # a: mean 12, var 4, n 3; b: mean 6, var 2, n 2
    se = math.sqrt(4 / 3 + 2 / 2)
    dof = (4 / 3 + 1) ** 2 / ((4 / 3) ** 2 / 2 + 1 ** 2 / 1)
    assert dof == pytest.approx(2.882352941)
    half = stats.t.ppf(0.975, dof) * se
    assert r.test == "Welch t" and r.difference == pytest.approx(6.0)
    assert (r.ci_low, r.ci_high) == (pytest.approx(6 - half), pytest.approx(6 + half))
    assert r.verdict == ("reproduced" if 6 - half > 0 else "not significant at 2 seeds")


def test_slope_claim_uses_per_seed_least_squares_slopes():
    values = {0.0: {0: 30.0, 1: 31.0, 2: 29.0}, 10.0: {0: 40.0, 1: 42.0, 2: 41.0}, 20.0: {0: 50.0, 1: 51.0, 2: 53.0}}
    rows = _rows(values, metric="p_mpjpe", axis="test_noise")
    claim = C.Claim("s", "noise", "error grows with sigma", "p_mpjpe", "slope", "test_noise", "", "variant=seq2seq",
                    "greater")
    r = C.check_claim(claim, rows)
    slopes = np.array([1.0, 1.0, 1.2])  # by hand: (y(20) - y(0)) / 20 for three equally spaced points
    half = T_975_2DF * slopes.std(ddof=1) / math.sqrt(3)
    assert r.difference == pytest.approx(slopes.mean())
    assert (r.ci_low, r.ci_high) == (pytest.approx(slopes.mean() - half), pytest.approx(slopes.mean() + half))
    assert r.verdict == "reproduced" and r.test.startswith("paired t")


def test_single_seed_has_no_interval_and_missing_conditions_are_not_measured():
    rows = _rows({"full": {0: 50.0}, "no_residual": {0: 60.0}})
    r = C.check_claim(_claim(), rows)
    assert r.verdict == "not significant at 1 seed" and math.isnan(r.ci_low) and r.seeds_needed is None
    r = C.check_claim(_claim(a="variant=no_dropout"), rows)
    assert r.verdict == "not measured" and "no_dropout" in r.detail
    cells = C.claim_cells(r)
    assert cells[0] == "x" and cells[4] == "—" and cells[-1].startswith("not measured")


def test_shipped_claims_name_conditions_their_suites_run():
    claims = C.load_claims()
    assert {c.suite for c in claims} == {"ablation", "noise", "seqlen"}
    texts = " ".join(c.text for c in claims)
    for phrase in ("w/o decoder residuals >> full", "w/o layer norm > full", "w/o recurrent dropout > full",
                   "error grows with test noise sigma", "longer windows help up to T = 5"):
        assert phrase in texts
    for c in claims:
        suite = load_suite(c.suite)
        variants = {v["name"] for v in suite.raw["variants"]}
        if c.kind == "slope":
            assert c.a in ("test_noise", "seq_len")  # the axis, not a condition
        for side in (c.a, c.b, c.where) if c.kind == "difference" else (c.where,):
            for part in filter(None, side.split(",")):
                key, _, value = part.partition("=")
                if key == "variant":
                    assert value in variants, (c.id, value)
                if key == "seq_len" and "axis" in suite.raw:
                    assert int(value) in suite.raw["axis"]["values"], (c.id, value)
                if key == "test_noise":
                    assert float(value) in suite.test_noise, (c.id, value)


@pytest.mark.parametrize("line, match", [
    ("x,ablation,t,mpjpe,ratio,variant=a,variant=b,,greater", "kind must be one of difference, slope"),
    ("x,ablation,t,mpjpe,difference,variant=a,variant=b,,bigger", "expected one of greater, less"),
    ("x,ablation,t,mpjpe,difference,variant=a,,,greater", "needs an id, condition a and"),
    ("x,ablation,t,mpjpe,difference,variant,variant=b,,greater", "must read column=value"),
])
def test_malformed_claims_file_names_file_and_line(tmp_path, line, match):
    path = tmp_path / "p_claims.csv"
    path.write_text("id,suite,text,metric,kind,a,b,where,expected\n" + line + "\n")
    with pytest.raises(DataError, match=match) as err:
        C.read_claims(path)
    assert "p_claims.csv line 2" in str(err.value)


def test_a_negligible_difference_is_not_given_an_absurd_seed_count():
    from liftbench.papers.claims import MANY_SEEDS, seeds_needed

    assert seeds_needed(0.02, 1.8) > MANY_SEEDS  # ~ (2.8 * 90)^2 seeds: the cell says "no difference to detect"
    assert seeds_needed(5.0, 1.0) < 10
