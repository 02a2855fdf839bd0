"""SPC against published textbook examples, to the printed precision.

Source throughout: D. C. Montgomery, Introduction to Statistical Quality Control,
6th ed. (Wiley, 2009). Each test names the example and table it reproduces.

The book rounds intermediate results (x-double-bar to 74.001, R-bar to 0.023, c-bar to
19.85) before computing limits, while the service carries full precision, so a printed
figure is matched to within one unit of its last printed digit (``printed``).
"""

from __future__ import annotations

import math

import pytest

from services.quality.domain.spc import charts, rules
from services.quality.domain.spc.capability import capability

# Table 6.3: inside diameter (mm) of forged automobile piston rings, 25 samples of 5.
PISTON_RINGS = [
    [74.030, 74.002, 74.019, 73.992, 74.008],
    [73.995, 73.992, 74.001, 74.011, 74.004],
    [73.988, 74.024, 74.021, 74.005, 74.002],
    [74.002, 73.996, 73.993, 74.015, 74.009],
    [73.992, 74.007, 74.015, 73.989, 74.014],
    [74.009, 73.994, 73.997, 73.985, 73.993],
    [73.995, 74.006, 73.994, 74.000, 74.005],
    [73.985, 74.003, 73.993, 74.015, 73.988],
    [74.008, 73.995, 74.009, 74.005, 74.004],
    [73.998, 74.000, 73.990, 74.007, 73.995],
    [73.994, 73.998, 73.994, 73.995, 73.990],
    [74.004, 74.000, 74.007, 74.000, 73.996],
    [73.983, 74.002, 73.998, 73.997, 74.012],
    [74.006, 73.967, 73.994, 74.000, 73.984],
    [74.012, 74.014, 73.998, 73.999, 74.007],
    [74.000, 73.984, 74.005, 73.998, 73.996],
    [73.994, 74.012, 73.986, 74.005, 74.007],
    [74.006, 74.010, 74.018, 74.003, 74.000],
    [73.984, 74.002, 74.003, 74.005, 73.997],
    [74.000, 74.010, 74.013, 74.020, 74.003],
    [73.982, 74.001, 74.015, 74.005, 73.996],
    [74.004, 73.999, 73.990, 74.006, 74.009],
    [74.010, 73.989, 73.990, 74.009, 74.014],
    [74.015, 74.008, 73.993, 74.000, 74.010],
    [73.982, 73.984, 73.995, 74.017, 74.013],
]
ALL = list(range(25))


def printed(value: float, figure: float, decimals: int) -> bool:
    """``value`` equals the book's ``figure`` to its printed precision (one unit)."""
    return abs(value - figure) <= 10.0**-decimals + 1e-12


def test_piston_rings_data_matches_the_printed_totals():
    # Table 6.3 prints sum of x-bar = 1850.028 (of the means rounded to 3 decimals)
    # and sum of R = 0.581.
    assert math.fsum(round(sum(s) / 5, 3) for s in PISTON_RINGS) == pytest.approx(1850.028)
    assert math.fsum(max(s) - min(s) for s in PISTON_RINGS) == pytest.approx(0.581, abs=5e-4)


def test_xbar_r_piston_rings_example_6_1():
    # Example 6.1: X-bar chart CL 74.001, UCL 74.014, LCL 73.988; R chart CL 0.023,
    # UCL 0.049, LCL 0 (printed to three decimals).
    chart = charts.xbar_r(PISTON_RINGS, ALL, None)
    xbar, r = chart.series
    assert printed(xbar.center_line, 74.001, 3)
    assert printed(xbar.upper[0], 74.014, 3)
    assert printed(xbar.lower[0], 73.988, 3)
    assert printed(r.center_line, 0.023, 3)
    assert printed(r.upper[0], 0.049, 3)
    assert r.lower[0] == 0
    assert xbar.out_of_control() == [] and r.out_of_control() == []


def test_xbar_s_piston_rings_example_6_3():
    # Example 6.3: s-bar = 0.0094; S chart UCL 0.0196, LCL 0; X-bar chart UCL 74.014,
    # LCL 73.988.
    xbar, s = charts.xbar_s(PISTON_RINGS, ALL, None).series
    assert printed(s.center_line, 0.0094, 4)
    assert printed(s.upper[0], 0.0196, 4)
    assert s.lower[0] == 0
    assert printed(xbar.upper[0], 74.014, 3)
    assert printed(xbar.lower[0], 73.988, 3)


def test_capability_piston_rings_section_6_2_5():
    # Section 6.2.5: sigma-hat = R-bar / d2 = 0.023 / 2.326 = 0.0099; with specifications
    # 74.000 +- 0.05 mm, Cp = 0.10 / (6 x 0.0099) = 1.68.
    result = capability(PISTON_RINGS, 73.95, 74.05)
    assert printed(result.sigma_within, 0.0099, 4)
    # The book's 1.68 divides by R-bar rounded to 0.023; the unrounded R-bar = 0.02324
    # gives 0.10 / (6 x 0.009991) = 1.668, i.e. 1.68 within the book's rounding of R-bar.
    assert result.cp.estimate == pytest.approx(0.10 / (6 * 0.02324 / 2.326), abs=1e-4)
    assert abs(result.cp.estimate - 1.68) < 0.015
    assert result.cp.lower < result.cp.estimate < result.cp.upper
    assert result.cpk.estimate <= result.cp.estimate
    assert result.normal  # the ring diameters are a textbook normal sample


# Example 7.1, Table 7.1: orange-juice cans, 30 samples of n = 50, nonconforming cans.
JUICE = [12, 15, 8, 10, 4, 7, 16, 9, 14, 10, 5, 6, 17, 12, 22,
         8, 10, 5, 13, 11, 20, 18, 24, 15, 9, 12, 7, 13, 9, 6]  # fmt: skip


def test_p_chart_trial_limits_then_assignable_causes_removed_example_7_1():
    sizes = [50] * 30
    (trial,) = charts.p_chart(JUICE, sizes, list(range(30)), None, count_chart=False).series
    # Trial limits: p-bar = 0.2313, UCL 0.4102, LCL 0.0524; samples 15 and 23 exceed.
    assert printed(trial.center_line, 0.2313, 4)
    assert printed(trial.upper[0], 0.4102, 4)
    assert printed(trial.lower[0], 0.0524, 4)
    assert trial.out_of_control() == [14, 22]
    # Assignable causes found for samples 15 and 23; revised p-bar = 0.2150, UCL 0.3893,
    # LCL 0.0407.
    revised = charts.phase_one(
        lambda keep: charts.p_chart(JUICE, sizes, keep, None, count_chart=False),
        30,
        [14, 22],
        auto_exclude=False,
    )
    (series,) = revised.series
    assert revised.excluded == (14, 22)
    assert printed(series.center_line, 0.2150, 4)
    assert printed(series.upper[0], 0.3893, 4)
    assert printed(series.lower[0], 0.0407, 4)


def test_np_chart_matches_p_chart_scaled():
    (np_series,) = charts.p_chart(JUICE, [50] * 30, list(range(30)), None, count_chart=True).series
    assert np_series.center_line == pytest.approx(50 * 347 / 1500)
    assert np_series.upper[0] == pytest.approx(50 * 0.41023, abs=1e-3)


# Example 7.3, Table 7.7: nonconformities on 26 successive samples of 100 circuit boards.
BOARDS = [21, 24, 16, 12, 15, 5, 28, 20, 31, 25, 20, 24, 16,
          19, 10, 17, 13, 22, 18, 39, 30, 24, 16, 19, 17, 15]  # fmt: skip


def test_c_chart_example_7_3():
    units = [1.0] * 26
    (trial,) = charts.c_u_chart(BOARDS, units, list(range(26)), None, per_unit=False).series
    # c-bar = 516 / 26 = 19.85, UCL 33.22, LCL 6.48; samples 6 and 20 are out.
    assert printed(trial.center_line, 19.85, 2)
    assert printed(trial.upper[0], 33.22, 2)
    assert printed(trial.lower[0], 6.48, 2)
    assert trial.out_of_control() == [5, 19]
    # Revised without samples 6 and 20: c-bar = 19.67, UCL 32.97, LCL 6.36.
    revised = charts.phase_one(
        lambda keep: charts.c_u_chart(BOARDS, units, keep, None, per_unit=False),
        26,
        [],
        auto_exclude=True,
    )
    assert revised.excluded == (5, 19)
    (series,) = revised.series
    assert printed(series.center_line, 19.67, 2)
    assert printed(series.upper[0], 32.97, 2)
    assert printed(series.lower[0], 6.36, 2)


def test_u_chart_is_the_c_chart_per_unit():
    units = [100.0] * 26
    (series,) = charts.c_u_chart(BOARDS, units, list(range(26)), None, per_unit=True).series
    assert series.center_line == pytest.approx(0.1985, abs=1e-4)
    assert series.upper[0] == pytest.approx(0.3322, abs=1e-4)


# Table 9.1: 30 observations, the first 20 from N(10, 1), the last 10 from N(11, 1).
SHIFT = [9.45, 7.99, 9.29, 11.66, 12.16, 10.18, 8.04, 11.46, 9.20, 10.34,
         9.03, 11.47, 10.51, 9.40, 10.08, 9.37, 10.62, 10.31, 8.52, 10.84,
         10.90, 9.33, 12.29, 11.50, 10.60, 11.08, 10.38, 11.62, 11.31, 10.52]  # fmt: skip


def test_tabular_cusum_example_9_1():
    # Example 9.1 (k = 1/2, h = 5, mu0 = 10, sigma = 1): Table 9.2 shows C+ first above
    # H = 5 at period 29 with C+_29 = 5.28, and C+_30 = 5.30.
    upper, lower = charts.cusum(SHIFT, 10.0, 1.0, k=0.5, h=5.0).series
    assert upper.out_of_control()[0] == 28
    assert printed(upper.values[28], 5.28, 2)
    assert printed(upper.values[29], 5.30, 2)
    assert lower.out_of_control() == []


def test_ewma_limits_example_9_2():
    # Example 9.2 (lambda = 0.1, L = 2.7, mu0 = 10, sigma = 1): z1 = 9.945; limits for
    # period 1: 10.27 / 9.73, period 2: 10.36 / 9.64; steady state 10.62 / 9.38.
    (series,) = charts.ewma(SHIFT, 10.0, 1.0, lam=0.1, width=2.7).series
    assert printed(series.values[0], 9.945, 3)
    assert (round(series.upper[0], 2), round(series.lower[0], 2)) == (10.27, 9.73)
    assert (round(series.upper[1], 2), round(series.lower[1], 2)) == (10.36, 9.64)
    assert (round(series.upper[29], 2), round(series.lower[29], 2)) == (10.62, 9.38)


def test_individuals_chart_uses_moving_range():
    values = [10.0, 12.0, 11.0, 13.0, 12.0]
    x, mr = charts.individuals_mr(values, list(range(5)), None).series
    assert mr.values == (2.0, 1.0, 2.0, 1.0)
    sigma = 1.5 / 1.128
    assert x.upper[0] == pytest.approx(11.6 + 3 * sigma)
    assert mr.upper[0] == pytest.approx(3.267 * 1.5, abs=5e-3)  # D4 = 3.267 for n = 2


def test_phase_two_uses_frozen_limits():
    frozen = charts.Frozen(center=74.0, sigma=0.01)
    xbar, _ = charts.xbar_r([[74.02] * 5, [74.0] * 5], [0, 1], frozen).series
    assert xbar.center_line == 74.0
    assert xbar.upper[0] == pytest.approx(74.0 + 3 * 0.01 / math.sqrt(5))
    assert xbar.out_of_control() == [0]


def test_run_rules_report_the_points_that_broke_them():
    sigma = [1.0] * 20
    values = [0.0] * 20
    values[3] = 3.5  # rule 1
    values[10:12] = [2.5, 2.6]  # 2 of 3 beyond 2 sigma
    for i in range(12, 20):
        values[i] = 0.5  # 8 (WE) in a row above the centre
    found = {(v.rule, v.points) for v in rules.western_electric(values, 0.0, sigma)}
    assert ("we_1", (3,)) in found
    assert ("we_2", (10, 11)) in found
    assert any(rule == "we_4" and set(range(12, 20)) <= set(points) for rule, points in found)
    trend = [float(i) * 0.1 for i in range(7)] + [0.0] * 3
    nelson = rules.nelson(trend, 0.3, [1.0] * 10)
    assert any(v.rule == "nelson_3" and v.points == tuple(range(7)) for v in nelson)
    assert not any(v.rule == "nelson_1" for v in nelson)
