"""Kernel SHAP's sampler and game, from the library: stratified pairs, the stopping rule, and rows
whose numbers do not depend on the rows they are explained with."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import mixed_frame, mixed_pipeline
from shapley_truth import brute_force_shapley

from xai_cli.methods import kernel_shap
from xai_cli.methods.base import Batch, Settings
from xai_cli.model import describe_model


def numeric_model(n_features: int, seed: int = 0):
    """A nonlinear regressor (trees) and a background on ``n_features`` float columns."""
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(seed)
    columns = [f"f{i}" for i in range(n_features)]
    frame = pd.DataFrame(rng.normal(size=(160, n_features)), columns=columns)
    target = frame["f0"] * frame["f1"] + np.sin(frame["f2"]) + frame.iloc[:, 3:].sum(axis=1)
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(frame, target)
    return model, frame.iloc[:30].reset_index(drop=True), frame.iloc[100:].reset_index(drop=True)


def explain(estimator, rows: pd.DataFrame, background: pd.DataFrame, *, output="raw", numbers=None, **settings):
    """kernel_shap.explain on ``rows`` as one batch (row numbers 0, 1... unless given), the last output."""
    model = describe_model(estimator)
    numbers = list(range(len(rows))) if numbers is None else list(numbers)
    column = len(model.output(output).labels) - 1
    batch = Batch(rows.reset_index(drop=True), numbers, [str(n) for n in numbers], [[column]] * len(rows))
    return kernel_shap.explain(model, batch, background, settings=Settings(output=output, **settings))


def numbers_of(explanation) -> tuple:
    """Everything numeric an explanation reports, for bitwise comparisons."""
    return (
        explanation.prediction,
        explanation.base_value,
        [(a.feature, a.attribution, a.std_error) for a in explanation.attributions],
        {key: value for key, value in explanation.quality.items()},
    )


def test_drawing_every_pair_gives_the_exact_values_with_zero_standard_errors():
    model, background, rows = numeric_model(6)
    row = rows.iloc[[0]]
    plan = kernel_shap.sampling_plan(6, 62)  # all 31 pairs of 6 features
    sample = kernel_shap.PairSample(plan, np.random.default_rng(0))
    side = sample.draw(31)
    assert len({tuple(m) for m in side} | {tuple(~m) for m in side}) == 62

    def value(masks):
        synthetic = kernel_shap.synthetic_rows(row, background, masks)
        return model.predict(synthetic).reshape(len(masks), len(background)).mean(axis=1)[:, None]

    sample.add(np.stack([value(side), value(~side)], axis=1))
    prediction = model.predict(row)
    base = model.predict(background).mean(keepdims=True)
    phi, std_errors = sample.estimate(base, prediction, [0])
    truth = brute_force_shapley(model.predict, row, background)[:, 0]
    np.testing.assert_allclose(phi[:, 0], truth, atol=1e-9)
    np.testing.assert_allclose(std_errors[0], 0.0, atol=1e-9)


@pytest.mark.parametrize(("n_features", "nsamples"), [(12, 2048), (30, 2048), (9, 24), (40, 100), (13, 5000)])
def test_plan_spends_at_most_the_budget_and_gives_every_stratum_two_pairs_first(n_features, nsamples):
    plan = kernel_shap.sampling_plan(n_features, nsamples)
    assert len(plan.seat_order) == nsamples // 2
    counts = np.bincount(plan.seat_order, minlength=len(plan.sizes))
    assert (counts <= plan.population).all()
    assert plan.mass.sum() == pytest.approx(1.0)
    floors = int(np.minimum(plan.population, 2).sum())
    if floors <= len(plan.seat_order):
        first = np.bincount(plan.seat_order[:floors], minlength=len(plan.sizes))
        assert (first == np.minimum(plan.population, 2)).all()


def test_a_larger_sample_keeps_the_pairs_of_a_smaller_one_and_repeats_none():
    plan = kernel_shap.sampling_plan(12, 2048)
    sample = kernel_shap.PairSample(plan, np.random.default_rng(3))
    first = sample.draw(64)
    later = sample.draw(1024)
    assert len(first) == 64 and len(later) == 1024 - 64
    drawn = np.concatenate([first, later])
    pairs = {min(tuple(m), tuple(~m)) for m in drawn}
    assert len(pairs) == len(drawn)  # every stratum of 12 features is listed: no pair drawn twice
    assert (np.bincount(sample.strata, minlength=len(plan.sizes)) == np.bincount(plan.seat_order)).all()


def test_sampled_values_are_close_and_their_standard_errors_honest():
    model, background, rows = numeric_model(10)
    sampled = explain(model, rows.iloc[:6], background, nsamples=400)
    exact = explain(model, rows.iloc[:6], background, nsamples=1022)
    assert all(e.quality["exact"] for e in exact) and not any(e.quality["exact"] for e in sampled)
    z = []
    for ours, truth in zip(sampled, exact):
        true_values = {a.feature: a.attribution for a in truth.attributions}
        z += [(a.attribution - true_values[a.feature]) / a.std_error for a in ours.attributions]
        assert ours.quality["additivity_gap"] < 1e-9
    assert 0.4 < float(np.sqrt(np.mean(np.square(z)))) < 2.0


def test_sampling_stops_at_the_accuracy_target_or_says_the_budget_ran_out(monkeypatch):
    from sklearn.linear_model import LinearRegression

    model, background, rows = numeric_model(14)
    additive = LinearRegression().fit(background, model.predict(background))
    stopped_early = explain(additive, rows.iloc[:3], background, nsamples=2048)
    for explanation in stopped_early:  # an additive game has no sampling error: the first round suffices
        assert explanation.quality["budget_exhausted"] is False
        assert explanation.quality["coalitions"] == 2 * kernel_shap.FIRST_ROUND_PAIRS + 2
        assert explanation.quality["max_std_error"] < 1e-9
    monkeypatch.setattr(kernel_shap, "TARGET_STD_ERROR", 0.0)
    spent = explain(model, rows.iloc[:3], background, nsamples=300)
    assert all(e.quality["budget_exhausted"] is True and e.quality["coalitions"] == 302 for e in spent)
    exact = explain(
        model.fit(background.iloc[:, :5], model.predict(background)), rows.iloc[:2, :5], background.iloc[:, :5]
    )
    assert all(e.quality["exact"] is True and e.quality["budget_exhausted"] is False for e in exact)


@pytest.mark.parametrize("kind", ["float block", "pipeline", "probability"])
def test_a_rows_numbers_do_not_depend_on_the_rows_it_is_explained_with(kind):
    from sklearn.linear_model import LogisticRegression

    if kind == "pipeline":
        train = mixed_frame(120, seed=4)
        features = ["age", "income", "color", "city", "noise"]
        estimator = mixed_pipeline(LogisticRegression(max_iter=500)).fit(train[features], train["label"])
        background, rows, settings = train[features].iloc[:40], train[features].iloc[60:67], {"nsamples": 24}
        settings["output"] = "probability"
    else:
        estimator, background, rows = numeric_model(13)
        settings = {"nsamples": 512}
        if kind == "probability":
            estimator = LogisticRegression(max_iter=500).fit(background, estimator.predict(background) > 0)
            settings["output"] = "probability"
    numbers = range(50, 50 + len(rows))
    together = explain(estimator, rows, background, numbers=numbers, **settings)
    alone = [explain(estimator, rows.iloc[[i]], background, numbers=[50 + i], **settings)[0] for i in range(len(rows))]
    backwards = explain(estimator, rows.iloc[::-1], background, numbers=numbers[::-1], **settings)[::-1]
    assert [numbers_of(e) for e in together] == [numbers_of(e) for e in alone] == [numbers_of(e) for e in backwards]
    assert not any(e.quality["exact"] for e in together)


def test_pipeline_coalitions_after_its_columnwise_preprocessing_give_the_pipelines_values():
    from sklearn.ensemble import RandomForestClassifier

    train = mixed_frame(150, seed=5)
    features = ["age", "income", "color", "city", "noise"]
    pipeline = mixed_pipeline(RandomForestClassifier(n_estimators=10, random_state=0)).fit(
        train[features], train["label"]
    )
    model = describe_model(pipeline)
    output = model.output("probability")
    rows, background = train[features].iloc[100:104].reset_index(drop=True), train[features].iloc[:30]
    game = kernel_shap.coalition_game(model, output, rows, background)
    plain = kernel_shap.CoalitionGame(
        output.predict, kernel_shap.frame_builder(rows, background), background, len(features)
    )
    assert game.input_columns > len(features)  # the final estimator's inputs: one-hot columns and all
    masks = np.random.default_rng(0).random((40, len(features))) < 0.5
    masks[0] = True
    for position in range(len(rows)):
        ours, ours_first = game.values(position, masks)
        theirs, theirs_first = plain.values(position, masks)
        np.testing.assert_allclose(ours, theirs, atol=1e-12)
        np.testing.assert_allclose(ours_first, output.predict(rows.iloc[[position]])[0], atol=1e-12)


def test_sparse_preprocessing_keeps_the_whole_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    train = mixed_frame(100, seed=6)[["color", "city", "label"]].fillna("none")
    pipeline = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(train[["color", "city"]], train["label"])
    model = describe_model(pipeline)
    output = model.output("probability")
    game = kernel_shap.coalition_game(model, output, train[["color", "city"]].iloc[:3], train[["color", "city"]])
    assert game.predict is output.predict and game.input_columns == 2


def test_synthetic_rows_take_real_categories_in_row_coalition_background_order():
    frame = pd.DataFrame(
        {
            "size": pd.Categorical(["s", "m", "l"], categories=["s", "m", "l", "xl"]),
            "name": ["a", "b", "c"],
            "x": [1.0, 2.0, 3.0],
        }
    )
    rows, background = frame.iloc[:2], frame.iloc[1:]
    masks = np.array([[[True, False, True]], [[False, True, False]]])  # one coalition per row
    synthetic = kernel_shap.synthetic_rows(rows, background, masks)
    assert synthetic["size"].dtype == frame["size"].dtype
    assert synthetic["size"].tolist() == ["s", "s", "m", "l"]
    assert synthetic["name"].tolist() == ["b", "c", "b", "b"]
    assert synthetic["x"].tolist() == [1.0, 1.0, 2.0, 3.0]
