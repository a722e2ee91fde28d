"""The server-drawn bar charts: scaled to the peak, honest about all-zero series."""

from imagegate.console.charts import bar_chart


def test_bars_scale_to_the_largest_value() -> None:
    chart = bar_chart("t", [("a", 1.0), ("b", 4.0)])
    assert chart.top_label == "4"
    low, high = chart.bars
    assert high.height == 4 * low.height and high.y < low.y


def test_an_all_zero_series_draws_flat_bars_and_says_zero() -> None:
    chart = bar_chart("t", [("a", 0.0), ("b", 0.0)], digits=2)
    assert chart.top_label == "0.00" and all(bar.height == 0 for bar in chart.bars)


def test_no_points_no_bars() -> None:
    assert bar_chart("t", []).bars == []
