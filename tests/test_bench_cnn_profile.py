"""`fastnn bench --cnn --profile`: the per-step forward/backward breakdown of the CNN
training steps (fastnn.bench.cnn.profile_cnn) and its table."""

from fastnn.bench import cnn


def test_profile_times_every_plan_step_and_restores_the_plan():
    X, y = cnn.make_images("lenet5", n=32)
    step = cnn.fastnn_cnn_step("lenet5", X, y, 8)
    plan = step.trainer.model._plan()
    runs = [s.run for s in plan.steps]
    prof = cnn.profile_cnn("lenet5", 8, repeats=1, min_time=0.0, step=step)
    names = list(prof["layers"])
    assert names[0].split() == ["0", "Conv2d+ReLU"]  # the fused convolution + activation
    assert len(names) == 8 and names[-1].endswith("Dense")
    assert all(f > 0 and b > 0 for f, b in prof["layers"].values())
    assert sum(f + b for f, b in prof["layers"].values()) < prof["step_s"]
    # the model's plan runs its own steps again (no timing wrapper left behind)
    assert [s.run for s in plan.steps] == runs
    table = cnn.profile_table(prof)
    assert "0 Conv2d+ReLU" in table and "loss, optimizer, bookkeeping" in table


def test_profile_of_the_resnet_shows_the_fused_batch_norm_relu():
    prof = cnn.profile_cnn("resnet", 2, repeats=1, min_time=0.0)
    assert any(n.endswith("BatchNorm2d+ReLU") for n in prof["layers"])
