"""Maintenance domain code without a server: features, trees, artifacts, rules, planning."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from services.maintenance import artifacts
from services.maintenance.domain import (
    alerts,
    cmapss,
    failure,
    features,
    planning,
    rul,
    rul_selection,
)
from services.maintenance.domain.anomaly import AnomalyModel
from services.maintenance.domain.intervals import ResidualBands
from services.maintenance.domain.readings import Reading
from services.maintenance.domain.steps import to_steps
from services.runtime.errors import FailedPrecondition, Violations
from tests.shared_data import shared_data

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("feature_set", sorted(features.FEATURE_SETS))
def test_history_features_are_causal_and_measure_slopes(feature_set):
    generator = np.random.default_rng(1)
    z = np.cumsum(generator.normal(size=(60, 3)), axis=0)
    full = features.history_features(z, feature_set=feature_set)
    assert full.shape[1] == len(features.feature_names(("a", "b", "c"), feature_set))
    for cut in (1, 7, 30, 59):
        prefix = features.history_features(z[:cut], feature_set=feature_set)
        np.testing.assert_allclose(prefix[-1], full[cut - 1])
    line = np.arange(50, dtype=float)[:, None] * 0.5
    last = features.history_features(line, feature_set=feature_set)[-1]
    names = features.feature_names(("s",), feature_set)
    assert last[names.index("s_slope30")] == pytest.approx(0.5)
    assert last[names.index("s_slope_all")] == pytest.approx(0.5)
    assert last[names.index("age")] == 50


def test_wide_features_add_short_slopes_and_the_recent_range():
    generator = np.random.default_rng(3)
    z = generator.normal(size=(40, 2))
    rows = features.history_features(z, feature_set="wide")
    names = features.feature_names(("a", "b"), "wide")
    assert rows[-1, names.index("b_min20")] == z[-20:, 1].min()
    assert rows[-1, names.index("a_max20")] == z[-20:, 0].max()
    assert rows[4, names.index("a_max20")] == z[:5, 0].max()  # fewer cycles than the window
    assert rows[-1, names.index("a_mean5")] == pytest.approx(z[-5:, 0].mean())
    ramp = np.r_[np.zeros(30), np.arange(10.0)][:, None]  # flat, then rising for 10 cycles
    last = features.history_features(ramp, feature_set="wide")[-1]
    ramp_names = features.feature_names(("s",), "wide")
    assert last[ramp_names.index("s_slope10")] == pytest.approx(1.0)
    assert last[ramp_names.index("s_slope30")] < 0.6


def test_random_cut_rmse_counts_each_unit_once():
    weights = rul_selection.cut_weights(20, min_cycles=10)
    assert weights[:9].tolist() == [0.0] * 9 and weights.sum() == pytest.approx(1.0)
    assert np.all(weights[9:] == weights[-1])
    # A long unit predicted perfectly and a short one off by 10 everywhere: over every
    # cycle the long unit dominates; as randomly cut units each counts half.
    long, short = rul_selection.cut_weights(1000), rul_selection.cut_weights(20)
    result = rul_selection.CrossValidation(
        (rul.RulParams(),),
        predicted=np.r_[np.zeros(1000), np.full(20, 10.0)],
        target=np.zeros(1020),
        cut_weight=np.r_[long, short],
        lengths=np.asarray([1000, 20]),
    )
    assert result.rmse == pytest.approx(np.sqrt(100 * 20 / 1020))
    assert result.truncated_rmse == pytest.approx(np.sqrt(50))


def test_random_cuts_draw_each_unit_equally_often_over_its_usable_cycles():
    lengths = np.asarray([300, 15, 40])
    weight = np.concatenate([rul_selection.cut_weights(n, min_cycles=10) for n in lengths])
    rows = int(lengths.sum())
    result = rul_selection.CrossValidation(
        (rul.RulParams(),), np.zeros(rows), np.zeros(rows), weight, lengths
    )
    cuts = result.random_cuts(2000, seed=0)
    unit_of_row = np.repeat(np.arange(3), lengths)
    assert np.bincount(unit_of_row[cuts]).tolist() == [2000, 2000, 2000]
    assert np.all(weight[cuts] > 0)  # never before the shortest usable window
    short = np.bincount(cuts[unit_of_row[cuts] == 1] - 300, minlength=15)[9:]
    assert short.min() > 0.8 * 2000 / 6  # the short unit's six usable cuts, alike
    assert result.random_cuts(5, seed=1).tolist() == result.random_cuts(5, seed=1).tolist()


def test_interval_calibrated_on_random_cuts_covers_randomly_cut_units():
    # Units of very different lives whose error grows with the life already used: over
    # every cycle the long-lived units' wide errors dominate the residuals; a randomly cut
    # unit, each counting once, is mostly a short one with small errors.
    generator = np.random.default_rng(0)
    lengths = np.where(generator.random(4000) < 0.2, 600, 60)

    def out_of_fold(units):
        predicted = np.concatenate([np.full(n, 10.0) for n in units])
        noise = np.concatenate([generator.normal(0, n / 20, n) for n in units])
        weight = np.concatenate([rul_selection.cut_weights(n) for n in units])
        return rul_selection.CrossValidation(
            (rul.RulParams(),), predicted, predicted + noise, weight, units
        )

    calibration = out_of_fold(lengths[:1000])
    cuts = calibration.random_cuts(rul_selection.CALIBRATION_CUTS, seed=0)
    at_cuts = ResidualBands.fit(calibration.predicted[cuts], calibration.target[cuts])
    every_cycle = ResidualBands.fit(calibration.predicted, calibration.target)
    # Fresh units, each predicted once at a random cut (as the test set is).
    scored = out_of_fold(lengths[1000:])
    one_cut = scored.random_cuts(1, seed=1)

    def coverage(bands):
        lower, upper = bands.interval(scored.predicted[one_cut], -1e9, 1e9)
        truth = scored.target[one_cut]
        return np.mean((lower <= truth) & (truth <= upper))

    assert coverage(at_cuts) == pytest.approx(0.9, abs=0.03)
    assert coverage(every_cycle) > 0.95  # far wider than needed for a random cut


def test_blend_averages_the_best_candidates_of_one_feature_set():
    target, weight, lengths = np.zeros(40), np.full(40, 1 / 40), np.asarray([40])

    def result(error, **params):
        members = (rul.RulParams(**params),)
        return rul_selection.CrossValidation(members, target + error, target, weight, lengths)

    over, under = result(3.0, max_leaf_nodes=7), result(-4.0, max_leaf_nodes=9)
    other_features = result(0.5, feature_set="wide")  # best alone, but its own features
    worst = result(20.0, max_leaf_nodes=11)
    blended = rul_selection.blend_of_best([worst, over, other_features, under], size=2)
    assert blended.members == other_features.members  # nothing else computes "wide"
    assert blended.truncated_rmse == pytest.approx(0.5)
    blended = rul_selection.blend_of_best([worst, over, under], size=2)
    assert [p.max_leaf_nodes for p in blended.members] == [7, 9]
    assert blended.truncated_rmse == pytest.approx(0.5)


def test_condition_normaliser_standardises_each_condition():
    generator = np.random.default_rng(2)
    settings = np.repeat([[0.0, 0.0, 100.0], [42.0, 0.84, 60.0]], 200, axis=0)
    sensors = np.where(settings[:, :1] > 1, 500.0, 100.0) + generator.normal(0, 2, (400, 1))
    normaliser = features.ConditionNormaliser.fit(settings, sensors, conditions=2)
    z = normaliser.transform(settings, sensors)
    for block in (z[:200], z[200:]):
        assert abs(block.mean()) < 0.2 and 0.8 < block.std() < 1.2


def test_artifacts_verify_their_hash(tmp_path):
    version = artifacts.save_artifact(
        tmp_path,
        "demo",
        {"a": np.arange(3.0)},
        kind="demo",
        training_data={"sha256": "x"},
        metrics={"rmse": 1.0},
        params={},
    )
    loaded = artifacts.load_artifact(tmp_path, "demo")
    assert loaded.version == version and loaded.arrays["a"].tolist() == [0.0, 1.0, 2.0]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    path = tmp_path / manifest["artifacts"]["demo"]["file"]
    payload = bytearray(path.read_bytes())
    payload[len(payload) // 2] ^= 0xFF
    path.write_bytes(bytes(payload))
    with pytest.raises(artifacts.ArtifactError, match="does not match"):
        artifacts.load_artifact(tmp_path, "demo")
    with pytest.raises(artifacts.ArtifactError, match="not in the manifest"):
        artifacts.load_artifact(tmp_path, "other")


def test_failure_labels_follow_the_documented_treatment(tmp_path):
    header = "UDI,Product ID,Type,Air temperature [K],Process temperature [K],"
    header += "Rotational speed [rpm],Torque [Nm],Tool wear [min],Machine failure,"
    header += "TWF,HDF,PWF,OSF,RNF"
    rows = [
        "1,L1,L,300,310,1500,40,10,1,0,0,0,0,0",  # failure with no mode: dropped
        "2,L2,L,300,310,1500,40,10,0,0,0,0,0,1",  # RNF without failure: negative
        "3,L3,L,300,310,1500,40,10,1,0,1,0,1,0",  # two modes: positive for both
    ]
    path = tmp_path / "ai4i.csv"
    path.write_text("\ufeff" + "\n".join([header, *rows]) + "\n", encoding="utf-8")
    data = failure.load_ai4i(path)
    assert data.dropped_unknown_cause == 1
    assert data.any_failure.tolist() == [0, 1]
    assert data.labels["HDF"].tolist() == [0, 1] and data.labels["OSF"].tolist() == [0, 1]


def test_threshold_rules_alert_once_per_rule_and_machine():
    rule = alerts.Rule("r", "", alerts.RuleKind.THRESHOLD, alerts.Severity.P0, "t", upper_limit=5)
    readings = [
        Reading("a", "t", T0, 6.0),
        Reading("a", "t", T0 + timedelta(1), 7.0),
        Reading("b", "t", T0, 1.0),
        Reading("b", "other", T0, 99.0),
    ]
    breaches = alerts.threshold_breaches([rule], readings)
    assert [(b.machine_id, b.value) for b in breaches] == [("a", 6.0)]
    violations = Violations()
    alerts.validate_rule(
        alerts.Rule("", "", alerts.RuleKind.THRESHOLD, alerts.Severity.P1, "t", 5.0, 1.0),
        violations,
    )
    with pytest.raises(Exception, match=r"rule\.lower_limit"):
        violations.raise_if_any()


def test_plan_respects_capacity_and_urgency():
    outlooks = [
        planning.MachineOutlook("late", 100, 0.2),
        planning.MachineOutlook("soon", 10, 0.9),
        planning.MachineOutlook("also-soon", 10, 0.8),
        planning.MachineOutlook("never", 10_000, 0.0),
    ]
    windows, unplanned = planning.plan_windows(
        outlooks,
        start=T0,
        horizon=timedelta(hours=200),
        cycle=timedelta(hours=1),
        window=timedelta(hours=4),
        max_parallel=1,
    )
    assert [w.machine_id for w in windows] == ["also-soon", "soon", "late"]
    assert windows[1].end <= windows[1].due  # the riskier machine keeps its due time
    assert all(a.end <= b.start for a, b in itertools.pairwise(windows))
    assert [u.split(":")[0] for u in unplanned] == ["never"]


def test_anomaly_model_needs_history_and_flags_broken_correlation():
    generator = np.random.default_rng(3)
    base = generator.normal(size=200)
    normal = np.column_stack([base, base + generator.normal(0, 0.1, 200)])
    with pytest.raises(FailedPrecondition):
        AnomalyModel.fit(("a", "b"), normal[:5])
    model = AnomalyModel.fit(("a", "b"), normal)
    assert model.score(np.array([[1.0, -1.0]]))[0] > model.threshold
    assert model.score(np.array([[1.0, 1.0]]))[0] < model.threshold
    assert AnomalyModel.from_json(model.to_json()).threshold == model.threshold


def test_steps_skip_incomplete_time_steps():
    readings = [
        Reading("m", "a", T0, 1.0, {"setting1": 3.0}),
        Reading("m", "b", T0, 2.0),
        Reading("m", "a", T0 + timedelta(1), 3.0),
    ]
    steps = to_steps(readings, ("a", "b"), ("setting1",), [9.0])
    assert steps.values.tolist() == [[1.0, 2.0]] and steps.settings.tolist() == [[3.0]]
    assert steps.incomplete == [(T0 + timedelta(1), ["b"])]


def test_rul_model_chosen_by_grouped_cv_learns_on_a_slice_of_fd001():
    folder = shared_data("cmapss")
    units = cmapss.load_units(folder / "train_FD001.txt")
    grid = [
        rul.RulParams(max_iter=1, seeds=1, min_samples_leaf=50),  # barely fitted
        rul.RulParams(max_iter=40, seeds=1, learning_rate=0.2, min_samples_leaf=50),
    ]
    # One thread, as training runs: OpenMP threads fighting over busy cores cost 5-10x.
    # Second stage: the first stage's winner trained on a target capped at 60 (every
    # healthy cycle then looks 65 cycles shorter-lived than the truth capped at 125).
    with threadpool_limits(1):
        trained = rul_selection.train_rul(
            units[:30], 1, grid, folds=3, seeds=2, caps=(60.0, 125.0), feature_sets=("wide",)
        )
    assert [(row["target_cap"], row["feature_set"]) for row in trained.grid] == [
        (125.0, "base"),
        (125.0, "base"),
        (60.0, "wide"),
        (125.0, "wide"),
    ]
    scores = [row["cv_rmse_random_cut"] for row in trained.grid]
    assert scores[0] > scores[1] and scores[2] > scores[1]
    # The blend with the barely fitted candidate errs more than the best alone.
    assert trained.metrics["cv3_rmse_capped_random_cut_blend"] > min(scores)
    assert trained.metrics["blend_members"] == 2  # the two base candidates
    (chosen_params,) = trained.members
    assert chosen_params.target_cap == 125.0 and chosen_params.seeds == 2
    assert chosen_params.max_iter == grid[1].max_iter
    chosen = trained.grid[scores.index(min(scores))]
    assert trained.metrics["cv3_rmse_capped_random_cut"] == pytest.approx(
        chosen["cv_rmse_random_cut"], abs=1e-4
    )
    assert trained.metrics["cv3_rmse_capped"] == pytest.approx(chosen["cv_rmse"], abs=1e-4)
    assert trained.metrics["cv3_rmse_capped_random_cut"] < 30
    model = rul.RulModel.from_arrays(trained.model.to_arrays())
    assert len(model.point) == 2 and model.feature_set == chosen_params.feature_set
    saved_before_feature_sets = {
        k: v for k, v in trained.model.to_arrays().items() if k != "feature_set"
    }
    assert rul.RulModel.from_arrays(saved_before_feature_sets).feature_set == "base"
    x, y, _ = rul.training_matrix(units[80:], model.normaliser, feature_set=model.feature_set)
    point, lower, upper = model.predict_features(x)
    assert cmapss.rmse(point, y) < 25
    assert np.all((lower >= 0) & (lower <= point) & (point <= upper) & (upper <= 125))
    # Calibrated on 30 units' out-of-fold residuals, the interval holds on 20 unseen ones.
    assert np.mean((lower <= y) & (y <= upper)) > 0.8
    with pytest.raises(rul.WindowTooShort):
        model.predict(units[0].settings[:5], units[0].sensors[:5][:, [1, 2]])


def test_residual_bands_cover_their_share_in_each_band():
    generator = np.random.default_rng(1)

    def sample(rows):
        point = generator.uniform(0, 125, rows)
        spread = np.where(point < 50, 2.0, 20.0)  # tight near the end of life, wide before
        return point, point + generator.normal(0, 1, rows) * spread

    calibration_point, calibration_truth = sample(20_000)
    bands = ResidualBands.fit(calibration_point, calibration_truth, edges=(50.0,), coverage=0.9)
    point, truth = sample(20_000)
    lower, upper = bands.interval(point, -1e9, 1e9)
    held = (lower <= truth) & (truth <= upper)
    for band in (point < 50, point >= 50):
        assert held[band].mean() == pytest.approx(0.9, abs=0.015)
    assert bands.upper[1] - bands.lower[1] > 5 * (bands.upper[0] - bands.lower[0])
    again = ResidualBands.from_arrays(bands.to_arrays("i"), "i")
    assert again.interval(point, 0, 125)[0].tolist() == bands.interval(point, 0, 125)[0].tolist()
    with pytest.raises(ValueError, match="calibration needs"):
        ResidualBands.fit(point[:10], truth[:10])


def test_cmapss_rows_parse_with_trailing_spaces(tmp_path):
    row = " ".join(["1", "1", *(["0.5"] * 24)]) + "  \n"
    path = tmp_path / "train.txt"
    path.write_text(row + row.replace("1 1 ", "1 2 ", 1))
    (unit,) = cmapss.load_units(path)
    assert unit.length == 2 and unit.sensors.shape == (2, 21)
    assert cmapss.training_target(200).max() == 125 and cmapss.training_target(3).tolist() == [
        2,
        1,
        0,
    ]
    assert cmapss.phm08_score(np.array([13.0]), np.array([0.0])) == pytest.approx(np.e**1.3 - 1)
