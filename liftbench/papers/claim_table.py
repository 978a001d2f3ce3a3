"""How a claim check is told: the cells of one claim's row, the notes under the table, the lead-in.

The words are fixed here so the terminal, report.md and the README say the same thing:

* a verdict is about direction and significance only: "same direction (p < 0.05)", "opposite direction
  (p < 0.05)", "not significant at 3 seeds", with the measured setting when it is not the paper's
  ("opposite on mocap-mini (p < 0.05)");
* "seeds needed" is for the paper's Δ (or the claim's declared minimum effect), said so, per side for
  Welch; for an observed Δ of the opposite sign, more seeds may confirm the opposite instead, said so too;
* the paper's Δ is Human3.6M's, labelled by what it is (printed by the paper, from the buggy evaluation,
  corrected), shown only in the paper's setting, and never as a number when it would be a Δ against a
  buggy value that was never corrected (then only its direction);
* the Holm-adjusted verdict (within the claim's paper table) sits beside the raw one.
"""

from __future__ import annotations

from liftbench.metrics import METRICS
from liftbench.papers.claims import MANY_SEEDS, ClaimResult
from liftbench.papers.match import data_label
from liftbench.papers.stats import ALPHA

CLAIM_HEADERS = ("claim", "statement", "metric", "paper Δ (Human3.6M)", "measured Δ [95 % CI]", "paper Δ in CI",
                 "seeds a/b", "test", "verdict", "Holm (per table)")
BASIS_LABEL = {"printed_buggy": "printed; buggy evaluation: a trend", "corrected": "corrected evaluation"}


def unit_of(result: ClaimResult) -> str:
    """The unit of a claim's difference: the metric's (mm, mm/frame² ...), per axis unit for a slope."""
    c = result.claim
    unit = METRICS.meta(c.metric).get("unit", "") if c.metric in METRICS else ""
    if c.kind.startswith("slope"):
        return f"{unit}/px" if c.axis in ("test_noise", "train_noise") else f"{unit} per {c.axis}"
    return unit


def _signed(value: float, digits: int | None = None) -> str:
    if value != value:
        return "—"
    if digits is None:  # as the paper / claims file wrote it: 6.4 -> +6.4, 4.65 -> +4.65
        digits = 1 if abs(round(value, 1) - value) < 1e-9 else 2
    return f"{value:+.{digits}f}"


def paper_cell(result: ClaimResult) -> str:
    """The paper's Δ as it may be shown (see the module docstring)."""
    c = result.claim
    if c.paper_difference is None and c.paper_basis != "trend":
        return "—"
    if not result.in_paper_setting:
        return "— (other setting)"
    if c.paper_basis == "trend":
        return f"{'>' if c.expected == 'greater' else '<'} 0 (direction only: buggy value, never corrected)"
    label = BASIS_LABEL.get(c.paper_basis, "")
    return f"{_signed(c.paper_difference)} {unit_of(result)}".rstrip() + (f" ({label})" if label else "")


def measured_cell(result: ClaimResult) -> str:
    if result.outcome == "not measured":
        return "—"
    i = result.interval
    unit = unit_of(result)
    if not i.testable:
        return f"{_signed(i.difference, 2)} {unit} (no interval)".replace("  ", " ")
    return f"{_signed(i.difference, 2)} [{_signed(i.low, 2)}, {_signed(i.high, 2)}] {unit}".rstrip()


def _seeds(result: ClaimResult) -> str:
    """'; ≈N seeds to detect the paper's Δ (+6.4 mm) at this spread' ('' when it cannot be said)."""
    if result.effect is None or result.outcome != "not significant" or not result.interval.sd == result.interval.sd:
        return ""
    unit = unit_of(result)
    what = (f"the paper's Δ ({_signed(result.effect)} {unit})" if result.effect_source == "the paper's Δ"
            else f"a {abs(result.effect):g} {unit} difference (the declared minimum effect)")
    per_side = " per side" if result.test.startswith("Welch") else ""
    n = result.n_a if result.claim.kind.startswith("slope") else min(result.n_a, result.n_b)
    if result.seeds_needed is None or result.seeds_needed > MANY_SEEDS:
        return f"; > {MANY_SEEDS} seeds{per_side} to detect {what} at this spread"
    if result.seeds_needed <= n:  # the effect would most likely have shown: evidence against an effect that large
        return f"; {n} seeds{per_side} already give 80 % power to detect {what} at this spread"
    return f"; ≈{result.seeds_needed} seeds{per_side} to detect {what} at this spread"


def verdict_cell(result: ClaimResult) -> str:
    """The raw verdict in words (direction and significance only)."""
    scope = f" {result.scope}" if result.scope else ""
    n = result.n_a if result.claim.kind.startswith("slope") else min(result.n_a, result.n_b)
    if result.outcome == "not measured":
        return f"not measured ({result.detail})"
    if result.outcome == "same":
        return f"same direction{scope} (p < {ALPHA:g})"
    if result.outcome == "opposite":
        return f"opposite{scope or ' direction'} (p < {ALPHA:g})"
    if result.outcome == "not testable":
        return f"not testable{scope}: every seed gave the same difference (no spread)"
    text = f"not significant{scope} at {n} seed{'s' if n != 1 else ''}"
    sign = 1.0 if result.claim.expected == "greater" else -1.0
    opposite = sign * result.difference < 0
    if opposite:
        text += ", observed Δ has the opposite sign"
    seeds = _seeds(result)
    if seeds and opposite:
        seeds += " (more seeds may confirm the opposite instead)"
    return text + seeds


def holm_cell(result: ClaimResult) -> str:
    p = result.holm_p
    if p != p:
        return "—"
    if p >= ALPHA:
        return f"not significant (p_Holm {p:.3g})"
    sign = 1.0 if result.claim.expected == "greater" else -1.0
    return f"{'same direction' if sign * result.difference > 0 else 'opposite'} (p_Holm {p:.3g})"


def inside_cell(result: ClaimResult) -> str:
    inside = result.paper_inside
    return "—" if inside is None else ("yes" if inside else "no")


def claim_cells(result: ClaimResult) -> list[str]:
    """One table row (``CLAIM_HEADERS``)."""
    c = result.claim
    n = f"{result.n_a}/{result.n_b}" if not c.kind.startswith("slope") else str(result.n_a)
    return [c.id, c.text, c.metric, paper_cell(result), measured_cell(result), inside_cell(result), n,
            result.test or "—", verdict_cell(result), holm_cell(result)]


def claim_notes(results: list[ClaimResult]) -> list[str]:
    """The lines under a claims table: every claim's caveat (``note``), then what made claims claims
    about the measured setting (their setting differences, once each)."""
    notes = [f"{r.claim.id}: {r.claim.note}" for r in results if r.claim.note]
    outside: dict[str, list[str]] = {}
    for r in results:
        if r.differences and r.outcome != "not measured":
            outside.setdefault("; ".join(r.differences), []).append(r.claim.id)
    for differences, ids in outside.items():
        notes.append(f"{', '.join(ids)}: measured outside the paper's setting of the claim ({differences}): a claim "
                     "about this setting, with no paper Δ.")
    return notes


def claims_lead(datasets: list[str]) -> str:
    """The sentence above a claims table: where the seeds were measured and what the columns mean."""
    where = ", ".join(data_label(d) for d in datasets) or "unknown data"
    return (f"Claims of the paper checked on {where}, from per-seed headline values (95 % t-intervals; paired t "
            "when both sides share seeds, else Welch; per-seed least-squares slopes for trends). 'paper Δ' is "
            "Human3.6M's (buggy evaluation where so), shown only where the setting is the paper's; verdicts are "
            "direction and significance only; Holm adjusts within each paper table.")
