"""BatchSizeSchedule: batch size and learning-rate factor per epoch."""
import math

import pytest

from fastnn.schedules import BatchSizeSchedule


def test_doubles_after_each_milestone_like_multistep():
    s = BatchSizeSchedule([2, 4])
    assert [s.batch_size(t, 32) for t in range(6)] == [32, 32, 64, 64, 128, 128]
    assert [s.lr_factor(t, 32) for t in range(6)] == [1.0] * 6


def test_factor_cap_and_lr_scaling():
    s = BatchSizeSchedule([1, 2, 3], factor=3, scale_lr="linear", max_batch_size=100)
    assert [s.batch_size(t, 10) for t in range(4)] == [10, 30, 90, 100]
    assert [s.lr_factor(t, 10) for t in range(4)] == [1.0, 3.0, 9.0, 10.0]
    r = BatchSizeSchedule([1], scale_lr="sqrt")
    assert r.lr_factor(1, 16) == math.sqrt(2)
    assert BatchSizeSchedule([1], max_batch_size=8).batch_size(1, 16) == 16  # never shrinks


def test_bad_arguments():
    with pytest.raises(ValueError, match="milestones"):
        BatchSizeSchedule([0])
    with pytest.raises(ValueError, match="factor"):
        BatchSizeSchedule([1], factor=0)
    with pytest.raises(ValueError, match="scale_lr"):
        BatchSizeSchedule([1], scale_lr="cubic")
