import pytest

from cloudwar import quarters
from cloudwar.errors import ScenarioError


def test_labels_count_from_the_start_quarter():
    assert quarters.label("2025Q4", 1) == "2025Q4"
    assert quarters.label("2025Q4", 2) == "2026Q1"
    assert quarters.label("2023Q3", 10) == "2025Q4"
    assert quarters.labels("2025Q4", [1, 5, 41]) == ["2025Q4", "2026Q4", "2035Q4"]


def test_step_accepts_whole_numbers_and_labels():
    assert quarters.step("2025Q4", 13) == 13
    assert quarters.step("2025Q4", "2027Q1") == 6
    assert quarters.step("2025Q4", "2025Q4") == 1
    assert quarters.label("2025Q4", quarters.step("2025Q4", "2031Q2")) == "2031Q2"


@pytest.mark.parametrize("bad", ["2027Q5", "27Q1", "2027q1", 1.5, True, None, "soon"])
def test_step_refuses_what_is_not_a_quarter(bad):
    with pytest.raises(ScenarioError, match="harvest_quarter"):
        quarters.step("2025Q4", bad, "harvest_quarter")


def test_step_refuses_a_label_before_the_start():
    with pytest.raises(ScenarioError, match="before the scenario's start"):
        quarters.step("2025Q4", "2025Q3", "at")
