"""Suite reports: the right plots for each suite shape, per-action tables, paper values labelled."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from liftbench.report.render import render_suite, suite_tables
from liftbench.runner.suite import run_suite
from liftbench.suites import expand, load_suite

TINY = {"data.name": "tiny", "train.epochs": 1, "model.hidden_size": 8, "train.batch_size": 16}


@pytest.fixture(scope="module")
def ablation_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("abl")
    specs = expand(load_suite("ablation"), "smoke", overrides=TINY)
    run_suite(specs, out, out / "suite", device="cpu")
    return out / "suite"


def test_ablation_report_has_bars_not_a_fake_seq_len_sweep(ablation_dir):
    written = render_suite(ablation_dir, Console(width=200, record=True))
    names = {p.name for p in written}
    # The MLP (T=1) beside seq2seq (T=5) is not a sequence-length sweep: no error-vs-T plot.
    assert "variants_p1.png" in names and "error_vs_seq_len.png" not in names
    assert "training_curves.png" in names and "report.md" in names
    for p in written:
        assert p.stat().st_size > 0


def test_ablation_tables_per_action_with_paper_deltas(ablation_dir):
    tables, md = suite_tables(ablation_dir)
    console = Console(width=250, record=True)
    for t in tables:
        console.print(t)
    text = console.export_text()
    assert "Protocol #1 (MPJPE, mm) per action group" in text and "Protocol #2 (P-MPJPE, mm) per action group" in text
    # Table 4 is on Human3.6M SH detections: a run on other data / GT 2D gets no paper value, and says why
    assert "52.7" not in text and "— (setting differs)" in text
    assert "data tiny vs h36m; 2D input gt vs sh_ft" in md
    assert "not the paper's recipe/data, so rankings may not transfer" in md.splitlines()[2]
    assert "P1 MPJPE video-weighted" in md and "### Claim checks" in md and "H4-residual" in md
    for variant in ("full", "no_smoothness", "no_dropout", "no_layer_norm", "no_layer_norm_no_dropout", "no_residual",
                    "mlp"):
        assert f"| {variant} |" in md


def test_noise_report_plots_error_vs_sigma(tmp_path):
    specs = expand(load_suite("noise"), "smoke", overrides=TINY, test_noise=[0.0, 10.0])
    run_suite(specs, tmp_path, tmp_path / "suite", device="cpu")
    names = {p.name for p in render_suite(tmp_path / "suite", Console(width=200, record=True))}
    assert "error_vs_test_noise.png" in names
    assert "variants_p1.png" in names  # two models at the clean condition


def test_compare_with_paper_deltas_match_the_gt_row(ablation_dir, run_cli):
    import pandas as pd

    from liftbench.errors import ConfigError
    from liftbench.report.render import compare_with_paper

    table, notes = compare_with_paper(ablation_dir / "results.csv", "hossain2018", "mpjpe", variant="full")
    # another dataset is a setting difference: no delta column at all, and a note naming what differs
    assert any("no published hossain2018 set with the same setting" in n and "data tiny vs h36m" in n for n in notes)
    headers = [str(c.header) for c in table.columns]
    cells = {h: list(map(str, c.cells)) for h, c in zip(headers, table.columns)}
    avg = cells[headers[0]].index("Avg")
    rows = pd.read_csv(ablation_dir / "results.csv")
    ours = rows[(rows.variant == "full") & (rows.metric == "mpjpe") & (rows.slice == "action_mean")].value.mean()
    assert not any(h.startswith("Δ") for h in headers)
    assert cells[headers[1]][avg] == f"{ours:.1f}"
    # the buggy published sets are flagged in their header and in a note naming the correction
    assert any("buggy evaluation" in h for h in headers)
    assert any("BUGGY EVALUATION: corrected number in hossain2018_corrected = 58.25 mm" in n for n in notes)
    with pytest.raises(ConfigError, match="no 'mpjpe' rows for variant nosuch"):
        compare_with_paper(ablation_dir / "results.csv", "hossain2018", "mpjpe", variant="nosuch")
    code, out, err = run_cli("compare", ablation_dir / "results.csv", "--paper", "nosuch")
    assert code == 2 and "Unknown" in err and "Traceback" not in err


# --------------------------------------------------------------------------------------------
# Like-for-like comparisons on hand-made Human3.6M rows (no training)
# --------------------------------------------------------------------------------------------

def _lifter_for(method: str) -> str:
    from liftbench.models import LIFTERS, lifter_contract

    return [n for n in LIFTERS.names() if lifter_contract(n).method == method][0]


def _h36m_rows(model: str, keypoints: str, seq_len: int, alignment: str, frames: dict, videos: dict,
               variant: str = "full"):
    """P1 rows of one run: frame-weighted per-action values ``frames``, video-weighted ``videos``."""
    import pandas as pd

    from liftbench.results import rows_frame

    base = {"run_id": f"{model}-abc", "suite": "", "model": model, "variant": variant, "seed": 0, "origin": "measured",
            "dataset": "h36m", "keypoints": keypoints, "train_noise": 0.0, "test_noise": 0.0, "seq_len": seq_len,
            "alignment": alignment, "metric": "mpjpe", "status": "ok", "unit": "mm"}
    rows = [{**base, "slice_type": "action", "slice": a, "value": v} for a, v in frames.items()]
    rows += [{**base, "slice_type": "action_video", "slice": a, "value": v} for a, v in videos.items()]
    rows += [{**base, "slice_type": "all", "slice": "action_mean", "value": float(np.mean(list(frames.values())))},
             {**base, "slice_type": "all", "slice": "video_mean", "value": float(np.mean(list(videos.values())))}]
    return rows_frame(pd.DataFrame(rows))


def _write(path: Path, rows, model: str, **params) -> None:
    """results.csv plus the run's config.json beside it (where compare finds the lifter's TTA)."""
    from liftbench.results import write_rows

    write_rows(path, rows)
    (path.parent / "config.json").write_text(json.dumps({"model": {"name": model, **params}}))


def _cells(table):
    headers = [str(c.header) for c in table.columns]
    return headers, {h: list(map(str, c.cells)) for h, c in zip(headers, table.columns)}


def test_compare_uses_the_published_averaging_and_shows_deltas_only_like_for_like(tmp_path):
    from liftbench.report.render import compare_with_paper

    seq = _lifter_for("hossain2018")
    frames = {"Directions": 50.0, "Walking": 40.0}
    videos = {"Directions": 52.0, "Walking": 43.0}
    path = tmp_path / "results.csv"
    _write(path, _h36m_rows(seq, "sh_ft_h36m", 5, "causal", frames, videos), seq)
    table, notes = compare_with_paper(path, "hossain2018_corrected", "mpjpe")
    headers, cells = _cells(table)
    rows = cells[headers[0]]
    # the corrected table is per-video weighted: the measured column and the delta use video-weighted values
    assert "video-weighted" in headers[1]
    assert cells[headers[1]][rows.index("Directions")] == "52.0" and cells[headers[1]][rows.index("Avg")] == "47.5"
    delta = [h for h in headers if h.startswith("Δ full")][0]
    assert cells[delta][rows.index("Directions")] == f"{52.0 - 48.4:.1f}"  # corrected Directions P1 = 48.4
    assert cells[delta][rows.index("Avg")] == f"{47.5 - 58.25:.1f}"
    assert not notes  # the corrected numbers are clean: nothing to flag
    # Martinez's published rows are frame-weighted: an MLP run is compared with its frame-weighted values
    mlp = _lifter_for("martinez2017")
    _write(path, _h36m_rows(mlp, "sh_ft_h36m", 1, "frame", frames, videos, variant="mlp"), mlp)
    table, notes = compare_with_paper(path, "martinez2017", "mpjpe")
    headers, cells = _cells(table)
    rows = cells[headers[0]]
    assert "frame-weighted" in headers[1] and cells[headers[1]][rows.index("Directions")] == "50.0"
    delta = [h for h in headers if h.startswith("Δ mlp")][0]
    assert cells[delta][rows.index("Directions")] == f"{50.0 - 51.8:.1f}"
    assert cells[delta][rows.index("Avg")] == f"{45.0 - 62.9:.1f}"


def test_compare_gt_run_gets_no_sh_delta_and_pretrained_no_fine_tuned(tmp_path):
    from liftbench.report.render import compare_with_paper

    seq = _lifter_for("hossain2018")
    path = tmp_path / "results.csv"
    _write(path, _h36m_rows(seq, "gt", 5, "causal", {"Walking": 30.0}, {"Walking": 31.0}), seq)
    table, notes = compare_with_paper(path, "hossain2018_corrected", "mpjpe")
    headers, _ = _cells(table)
    assert not any(h.startswith("Δ") for h in headers)
    assert any("2D input gt vs sh_ft" in n for n in notes)
    table, notes = compare_with_paper(path, "hossain2018", "mpjpe")  # ...but the paper's GT row (39.2, buggy) matches
    headers, cells = _cells(table)
    delta = [h for h in headers if h.startswith("Δ full")][0]
    assert cells[delta][cells[headers[0]].index("Avg")] == f"{31.0 - 39.2:.1f}"  # Hossain weights videos
    assert any("no corrected number was published" in n for n in notes)
    _write(path, _h36m_rows(seq, "sh_pt_mpii", 5, "causal", {"Walking": 30.0}, {"Walking": 31.0}), seq)
    for paper in ("hossain2018", "hossain2018_corrected"):
        table, notes = compare_with_paper(path, paper, "mpjpe")
        assert not any(str(c.header).startswith("Δ") for c in table.columns)
        assert any("sh_pt vs" in n for n in notes)


def test_compare_paper_pavllo2019_matches_window_alignment_and_tta(tmp_path, run_cli):
    from liftbench.report.render import compare_with_paper
    from liftbench.results import write_rows

    tcn = _lifter_for("pavllo2019")
    per_action = {"Directions": 45.0, "Walking": 33.0}
    run = tmp_path / "run"
    run.mkdir()
    path = run / "results.csv"
    write_rows(path, _h36m_rows(tcn, "cpn_ft_h36m_dbb", 243, "causal", per_action, per_action))
    # no config.json beside the rows: TTA unknown, so nothing matches
    table, notes = compare_with_paper(path, "pavllo2019", "mpjpe")
    assert any("test-time augmentation unknown vs flip" in n for n in notes)
    (run / "config.json").write_text(json.dumps({"model": {"name": tcn, "filter_widths": "3,3,3,3,3", "causal": True}}))
    table, notes = compare_with_paper(path, "pavllo2019", "mpjpe")
    headers, cells = _cells(table)
    delta = [h for h in headers if h.startswith("Δ full")][0]
    rows = cells[headers[0]]
    assert cells[delta][rows.index("Directions")] == f"{45.0 - 45.9:.1f}"  # the causal row, not the centred 45.2
    assert cells[delta][rows.index("Avg")] == f"{39.0 - 49.0:.1f}"
    code, out, err = run_cli("compare", path, "--paper", "pavllo2019")
    assert code == 0 and "Traceback" not in err and "pavllo2019" in out


def test_protocol_card_counts_the_test_set_and_carries_the_banner(ablation_dir):
    import pandas as pd

    rows = pd.read_csv(ablation_dir / "results.csv")
    run_id = rows[rows.variant == "full"].run_id.iloc[0]
    card = json.loads((ablation_dir.parent / "runs" / run_id / "protocol.json").read_text())
    groups = card["test_set"]["per_action_group"]
    action_rows = rows[(rows.run_id == run_id) & (rows.metric == "mpjpe") & (rows.slice_type == "action")]
    # frames per group in the card = frames behind each per-action value, counted independently by the scorer
    assert {k: v["frames"] for k, v in groups.items()} == dict(zip(action_rows["slice"], action_rows["n_frames"]))
    assert card["test_set"]["frames"] == card["frames"]["test_expected"]
    assert "not the paper's recipe/data" in card["recipe_banner"] and "data tiny" in card["recipe_banner"]


def test_suite_report_on_the_papers_setting_puts_table4_beside_ours_with_the_video_weighting(tmp_path):
    import pandas as pd

    from liftbench.report.render import suite_tables
    from liftbench.results import rows_frame, write_rows
    from liftbench.runner.suite import summarize

    seq = _lifter_for("hossain2018")
    declared = {s.variant: s.config for s in expand(load_suite("ablation"), "paper")}  # the runs as the preset says
    out = tmp_path / "out"
    directory = out / "ablation-paper-h36m"
    directory.mkdir(parents=True)
    rows, runs = [], []
    # per seed: frame-weighted action_mean f, video-weighted video_mean f + 2 (so the two are told apart)
    for variant, values in (("full", {0: 60.0, 1: 62.0}), ("no_dropout", {0: 66.0, 1: 69.0})):
        for seed, f in values.items():
            run_id = f"{seq}-{variant}{seed}"
            runs.append({"run_id": run_id, "variant": variant, "seed": seed})
            (out / "runs" / run_id).mkdir(parents=True)
            (out / "runs" / run_id / "config.json").write_text(json.dumps(declared[variant].to_dict()))
            base = {"run_id": run_id, "suite": "ablation", "model": seq, "variant": variant, "seed": seed,
                    "origin": "measured", "dataset": "h36m", "keypoints": "sh_ft_h36m", "train_noise": 0.0,
                    "train_keypoints": "sh_ft_h36m", "test_keypoints": "sh_ft_h36m",
                    "test_noise": 0.0, "seq_len": 5, "alignment": "causal", "status": "ok", "unit": "mm"}
            for metric in ("mpjpe", "p_mpjpe"):
                rows += [{**base, "metric": metric, "slice_type": "all", "slice": "action_mean", "value": f},
                         {**base, "metric": metric, "slice_type": "all", "slice": "video_mean", "value": f + 2},
                         {**base, "metric": metric, "slice_type": "action", "slice": "Walking", "value": f}]
    frame = rows_frame(pd.DataFrame(rows))
    write_rows(directory / "results.csv", frame)
    summarize(frame).to_csv(directory / "summary.csv", index=False)
    (directory / "manifest.json").write_text(json.dumps({"suite": "ablation", "preset": "paper", "runs": runs}))
    tables, md = suite_tables(directory)
    assert "not the paper's recipe" not in md and "Reproduces: Hossain & Little 2018, Table 4" in md
    line = next(x for x in md.splitlines() if x.startswith("| full |"))
    # Hossain weights videos: ours is the video-weighted mean over seeds, (62 + 64) / 2 = 63.0, Δ 63.0 - 51.9
    assert "51.9 P1; ours 63.0 video-weighted within action, Δ 11.1 ⚠" in line
    line = next(x for x in md.splitlines() if x.startswith("| no_dropout |"))
    assert "58.3 P1 (paper Δ +6.4); ours 69.5 video-weighted within action, Δ 11.2" in line
    assert "BUGGY EVALUATION: corrected number in hossain2018_corrected = 58.25 mm" in md
    assert "no corrected number was published" in md  # the ablation rows have no correction
    claims = next(x for x in md.splitlines() if x.startswith("| H4-dropout |"))
    # per-seed differences 6, 7: mean 6.5, sd sqrt(0.5), half-width t(0.975, 1) * 0.5 = 12.706 * 0.5
    assert "+6.50 [+0.15, +12.85] mm" in claims and "| same direction (p < 0.05) |" in claims
    # in the paper's setting: the paper's Δ beside ours, labelled, and whether it lies in the interval
    assert "| +6.4 mm (printed; buggy evaluation: a trend) |" in claims and "| yes |" in claims
    # Holm over Table 4's claims measured here (only H4-dropout has two sides): p unchanged, alone in the family
    assert "same direction (p_Holm" in claims
    assert "on mocap-mini" not in md and "Claims of the paper checked on h36m" in md


def test_suite_command_prints_the_banner_and_the_claims_table(tmp_path, run_cli):
    code, out, err = run_cli("noise", "--sigma", "10", "--data", "tiny", "--seeds", "2", "--device", "cpu",
                             "--out", tmp_path, "--set", "train.epochs=1", "--set", "model.hidden_size=8",
                             "--set", "train.batch_size=16")
    assert code == 0, err
    text = " ".join(out.split())
    # once when the suite starts and once with the report, one line each
    assert text.count("Note: not the paper's recipe/data, so rankings may not transfer") == 2
    assert "noise:thepaper'sclaimsagainstthemeasuredseeds" in "".join(out.split())  # the title, however wrapped
    report = next(tmp_path.glob("noise-smoke-tiny/report.md")).read_text()
    assert "rankings may not transfer" in report.splitlines()[2] and "| H3-clean-vs-mlp |" in report
    section = report[report.index("### Claim checks"):]
    assert section.count("rankings may not transfer") == 1  # the claims section repeats the banner
    assert " on tiny" in section and "Claims of the paper checked on tiny (not Human3.6M)" in section


def _hand_made_suite(directory: Path, suite: str, preset: str, variants: dict, metrics=("mpjpe", "p_mpjpe"),
                     dataset: str = "mocap-mini", keypoints: str = "gt", configs: dict | None = None) -> None:
    """A suite directory written by hand: ``variants`` = {variant: (model, {seed: headline value})}; run
    directories hold only what ``configs`` gives (no checkpoints, no training logs, no protocol cards)."""
    import pandas as pd

    from liftbench.results import rows_frame, write_rows
    from liftbench.runner.suite import summarize

    directory.mkdir(parents=True)
    rows, runs = [], []
    for variant, (model, values) in variants.items():
        for seed, value in values.items():
            run_id = f"{model}-{variant}{seed}"
            runs.append({"run_id": run_id, "variant": variant, "seed": seed})
            if configs and variant in configs:
                (directory.parent / "runs" / run_id).mkdir(parents=True)
                (directory.parent / "runs" / run_id / "config.json").write_text(json.dumps(configs[variant].to_dict()))
            base = {"run_id": run_id, "suite": suite, "model": model, "variant": variant, "seed": seed,
                    "origin": "measured", "dataset": dataset, "keypoints": keypoints, "train_keypoints": keypoints,
                    "test_keypoints": keypoints, "train_noise": 0.0, "test_noise": 0.0,
                    "seq_len": 5 if model != "mlp" else 1,
                    "status": "ok", "unit": "mm", "n_frames": 100, "n_frames_expected": 100}
            for metric in metrics:
                rows += [{**base, "metric": metric, "slice_type": "all", "slice": "action_mean", "value": value},
                         {**base, "metric": metric, "slice_type": "action", "slice": "Walk", "value": value}]
    frame = rows_frame(pd.DataFrame(rows))
    write_rows(directory / "results.csv", frame)
    summarize(frame).to_csv(directory / "summary.csv", index=False)
    (directory / "manifest.json").write_text(json.dumps({"suite": suite, "preset": preset, "runs": runs}))


def test_report_never_crashes_on_a_suite_without_training_logs(tmp_path):
    seq, mlp = _lifter_for("hossain2018"), _lifter_for("martinez2017")
    directory = tmp_path / "out" / "ablation-smoke-mocap-mini"
    _hand_made_suite(directory, "ablation", "smoke",
                     {"full": (seq, {0: 50.0, 1: 51.0}), "mlp": (mlp, {0: 55.0, 1: 57.0})})
    written = render_suite(directory, Console(width=200, record=True))  # two lifters, no inference speeds: no log plot
    names = {p.name for p in written}
    assert "report.md" in names and "lifters_p1_vs_speed.png" not in names and "training_curves.png" not in names
    md = (directory / "report.md").read_text()
    # no config.json: the banner says the resolved configs are unknown, and no table is claimed to be reproduced
    assert "resolved config unknown" in md and "Reproduces:" not in md


def test_claim_section_speaks_of_mocap_mini_and_shows_the_notes(tmp_path):
    from liftbench.suites import expand, load_suite

    seq, mlp = _lifter_for("hossain2018"), _lifter_for("martinez2017")
    smoke = {s.variant: s.config for s in expand(load_suite("ablation"), "smoke")}
    directory = tmp_path / "out" / "ablation-smoke-mocap-mini"
    _hand_made_suite(directory, "ablation", "smoke",
                     {"full": (seq, {0: 50.0, 1: 51.0, 2: 50.5}), "mlp": (mlp, {0: 55.0, 1: 57.0, 2: 56.0})},
                     metrics=("mpjpe", "p_mpjpe", "jitter"), configs=smoke)
    tables, md = suite_tables(directory)
    section = md[md.index("### Claim checks"):]
    assert "Claims of the paper checked on mocap-mini (~40 s, one retargeted body; not Human3.6M)" in section
    assert "**Note: not the paper's recipe/data" in section  # the banner, repeated
    line = next(x for x in section.splitlines() if x.startswith("| H1-vs-mlp |"))
    assert "| — (other setting) |" in line and "same direction on mocap-mini (p < 0.05)" in line and "4.65" not in line
    # the claim's note reaches the reader: the corrected gap, not the +11.0 mixing buggy and correct numbers
    assert "- H1-vs-mlp: Table 1 prints 62.9 vs 51.9 mm" in section and "+4.65 mm (shown)" in section
    assert "measured outside the paper's setting of the claim (data mocap-mini vs h36m" in section
    # a variant the suite did not run is said so, never guessed
    assert "| H4-residual |" in section and "not measured (no ok rows for variant=no_residual" in section


def test_compare_trained_on_gt_scored_on_sh_gets_no_sh_delta_and_table3_gt_sh_matches(tmp_path):
    from liftbench.report.render import compare_with_paper

    seq = _lifter_for("hossain2018")
    path = tmp_path / "results.csv"
    rows = _h36m_rows(seq, "sh_ft_h36m", 5, "causal", {"Walking": 60.0}, {"Walking": 61.0})
    rows["train_keypoints"] = "gt"  # evaluate --keypoints sh_ft_h36m on a GT-trained run
    _write(path, rows, seq)
    table, notes = compare_with_paper(path, "hossain2018_corrected", "mpjpe")
    headers, _ = _cells(table)
    assert not any(h.startswith("Δ") for h in headers) and any("training 2D gt vs sh_ft" in n for n in notes)
    assert any("trained gt, scored sh_ft_h36m" in h for h in headers)
    # Table 3's bottom row (trained on GT, tested on MPII pre-trained SH) is rigid P2: the rigid rows are used
    rows = _h36m_rows(seq, "sh_pt_mpii", 5, "causal", {"Walking": 60.0}, {"Walking": 61.0})
    p2 = rows.assign(metric="p_mpjpe", value=rows["value"] - 10)
    rigid = rows.assign(metric="p_mpjpe_rigid", value=rows["value"] - 5)
    both = pd.concat([p2, rigid], ignore_index=True).assign(train_keypoints="gt")
    _write(path, both, seq)
    table, notes = compare_with_paper(path, "hossain2018_table3", "p_mpjpe")
    headers, cells = _cells(table)
    delta = [h for h in headers if h.startswith("Δ full")][0]
    avg = cells[headers[0]].index("Avg")
    assert cells[delta][avg] == f"{(61.0 - 5) - 62.43:.1f}"  # video-weighted rigid P2 minus 62.43
    assert "rigid P2" in headers[1] and "62.43" in " ".join(c[avg] for c in cells.values())


def test_compare_prints_recipe_differences_flags_a_test_subset_and_prints_58_25(tmp_path):
    from liftbench.config import resolve_config
    from liftbench.report.render import compare_with_paper
    from liftbench.results import write_rows

    seq = _lifter_for("hossain2018")
    path = tmp_path / "results.csv"
    cfg = resolve_config(seq, options={"data.name": "h36m", "data.keypoints": "sh_ft_h36m"},
                         overrides={"train.epochs": 3, "data.test_subset": 0.5})
    rows = _h36m_rows(seq, "sh_ft_h36m", 5, "causal", {"Walking": 60.0}, {"Walking": 61.0})
    write_rows(path, rows.assign(n_frames=50, n_frames_expected=100))
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    table, notes = compare_with_paper(path, "hossain2018_corrected", "mpjpe")
    headers, cells = _cells(table)
    assert any("epochs 3 (paper 100)" in n and "test subset 0.5" in n for n in notes)  # as report says it
    assert not any(h.startswith("Δ") for h in headers)  # half the test frames: not comparable with 58.25
    assert any("test subset (scored 50 of 100 frames) vs the whole test set" in n for n in notes)
    write_rows(path, rows.assign(n_frames=100, n_frames_expected=100))
    table, _ = compare_with_paper(path, "hossain2018_corrected", "mpjpe")
    headers, cells = _cells(table)
    assert "58.25" in cells[[h for h in headers if "Actual_result.png" in h][0]]  # never 58.2


def test_compare_motionbert_only_under_its_own_convention_with_its_frame_mean(tmp_path, run_cli):
    import pandas as pd

    from liftbench.report.render import compare_with_paper
    from liftbench.results import rows_frame

    mb = _lifter_for("zhu2023")
    rows = []
    # one run scored twice: every frame once (liftbench, the whole test set) and MotionBERT's way (fewer frames by
    # design: tails and three S9 takes left out); per-action values differ so the columns are told apart
    scorings = (("liftbench", 1000, {"Directions": 40.0, "Walking": 44.0}, 41.0),
                ("motionbert", 800, {"Directions": 38.0, "Walking": 42.0}, 39.5))
    for convention, n_frames, per_action, frame_mean in scorings:
        base = {"run_id": f"{mb}-abc", "suite": "", "model": mb, "variant": "full", "seed": 0, "origin": "measured",
                "dataset": "h36m", "keypoints": "sh_ft_h36m", "train_noise": 0.0, "test_noise": 0.0, "seq_len": 243,
                "alignment": "clip", "metric": "mpjpe", "status": "ok", "unit": "mm", "convention": convention,
                "n_frames_expected": 1000}
        rows += [{**base, "slice_type": "action", "slice": a, "value": v, "n_frames": n_frames // 2}
                 for a, v in per_action.items()]
        headline = float(np.mean(list(per_action.values())))
        rows += [{**base, "slice_type": "all", "slice": "action_mean", "value": headline, "n_frames": n_frames},
                 {**base, "slice_type": "all", "slice": "frame_mean", "value": frame_mean, "n_frames": n_frames}]
    path = tmp_path / "run" / "results.csv"
    path.parent.mkdir()
    _write(path, rows_frame(pd.DataFrame(rows)), mb)
    table, notes = compare_with_paper(path, "zhu2023", "mpjpe")
    headers, cells = _cells(table)
    labels = cells[headers[0]]
    deltas = [h for h in headers if h.startswith("Δ")]
    assert len(deltas) == 1  # only the motionbert-convention column is like for like
    # the most detailed matching set is mmpose's (action and frame means): both rows get a delta
    assert "mmpose" in deltas[0] or "mmpose re-evaluation" in deltas[0]
    assert cells[deltas[0]][labels.index("Avg")] == f"{40.0 - 39.2:.1f}"
    assert cells[deltas[0]][labels.index("Avg over frames")] == f"{39.5 - 39.8:.1f}"
    ours = [h for h in headers if h.startswith("liftbench") and "motionbert convention" in h]
    assert len(ours) == 1 and cells[ours[0]][labels.index("Directions")] == "38.0"
    assert any("evaluation convention liftbench vs motionbert" in n for n in notes)  # and why the other has none
    # the same run scored on part of the test set: the every-frame rows say so, and nothing is compared
    short = rows_frame(pd.DataFrame([{**r, "n_frames": r["n_frames"] // 2} if r["convention"] == "liftbench" else r
                                     for r in rows]))
    _write(path, short, mb)
    table, notes = compare_with_paper(path, "zhu2023", "mpjpe")
    assert not any(str(c.header).startswith("Δ") for c in table.columns)
    assert any("test subset (scored 500 of 1000 frames)" in n for n in notes)
    code, out, err = run_cli("compare", path, "--paper", "zhu2023")
    assert code == 0 and "Traceback" not in err and "zhu2023" in out


def test_report_banner_of_an_overridden_paper_preset_comes_from_the_run_configs(tmp_path, run_cli):
    """End to end through ``liftbench report``: the runs of ``run ablation --preset paper -k gt --set
    train.epochs=3`` (their resolved configs, as the suite writes them) are not Table 4's setting, and every
    renderer says what differs; the same runs as declared reproduce it."""
    seq = _lifter_for("hossain2018")
    values = {"full": (seq, {0: 60.0, 1: 62.0, 2: 61.0}), "no_dropout": (seq, {0: 66.0, 1: 69.0, 2: 67.0})}
    overridden = {s.variant: s.config for s in expand(load_suite("ablation"), "paper",
                                                      overrides={"data.keypoints": "gt", "train.epochs": 3})}
    directory = tmp_path / "out" / "ablation-paper-h36m"
    _hand_made_suite(directory, "ablation", "paper", values, dataset="h36m", keypoints="gt", configs=overridden)
    code, out, err = run_cli("report", directory)
    assert code == 0 and "Traceback" not in err, err
    md = (directory / "report.md").read_text()
    banner = next(x for x in md.splitlines() if "rankings may not transfer" in x)
    assert "preset 'paper' declares the setting of Hossain & Little 2018, Table 4" in banner
    assert "but the runs differ" in banner
    assert "data.keypoints gt (preset: sh_ft_h36m)" in banner and "train.epochs 3 (preset: 100)" in banner
    assert "Reproduces:" not in md
    terminal = " ".join(out.split())
    assert "data.keypoints gt (preset: sh_ft_h36m)" in terminal and "train.epochs 3 (preset: 100)" in terminal
    # the claims are claims about this setting: no paper Δ beside them
    line = next(x for x in md.splitlines() if x.startswith("| H4-dropout |"))
    assert "| — (other setting) |" in line and "on these keypoints" in line
    # the same hand-made runs with the declared configs: the table is reproduced and no banner is printed
    declared = {s.variant: s.config for s in expand(load_suite("ablation"), "paper")}
    exact = tmp_path / "exact" / "ablation-paper-h36m"
    _hand_made_suite(exact, "ablation", "paper", values, dataset="h36m", keypoints="sh_ft_h36m", configs=declared)
    code, out, err = run_cli("report", exact)
    md = (exact / "report.md").read_text()
    assert code == 0 and "rankings may not transfer" not in md and "Reproduces: Hossain & Little 2018, Table 4" in md
    line = next(x for x in md.splitlines() if x.startswith("| H4-dropout |"))
    assert "(other setting)" not in line and "+6.4 mm" in line
