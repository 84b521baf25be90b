"""Dataset registry: shapes, seeding, noise, the geometry each set promises, and digits."""

import numpy as np
import pytest

from app.engine.datasets import (
    DATASETS,
    EXTENT,
    FEATURES,
    MOON_RADIUS,
    featurize,
    grid_points,
    make_dataset,
)

PLANAR = [name for name, spec in DATASETS.items() if spec.is_2d]
BINARY = [name for name in PLANAR if DATASETS[name].task == "classification"]
REGRESSION = ["plane", "multigauss"]


def all_points(d):
    return np.vstack([d.points_train, d.points_test])


def all_targets(d):
    return np.concatenate([d.y_train, d.y_test])


def test_registry_names_and_specs():
    assert list(DATASETS) == [*BINARY, *REGRESSION, "digits"]
    assert BINARY == ["circle", "xor", "gauss", "spiral", "moons"]
    assert list(FEATURES) == ["x1", "x2", "x1^2", "x2^2", "x1*x2", "sin(x1)", "sin(x2)"]
    for name, spec in DATASETS.items():
        assert spec.name == name
        assert spec.description
    assert [n for n in DATASETS if DATASETS[n].task == "regression"] == REGRESSION
    assert all(DATASETS[n].n_classes == 2 for n in BINARY)
    assert all(DATASETS[n].n_classes == 0 for n in REGRESSION)
    assert (DATASETS["digits"].n_classes, DATASETS["digits"].is_2d) == (10, False)


@pytest.mark.parametrize("name", PLANAR)
def test_shapes_dtypes_and_targets(name):
    d = make_dataset(name, n_samples=301, noise=0.5, train_ratio=0.3, features=list(FEATURES))
    assert d.x_train.shape == (90, 7) and d.x_test.shape == (211, 7)
    assert d.points_train.shape == (90, 2) and d.points_test.shape == (211, 2)
    assert d.y_train.shape == (90,) and d.y_test.shape == (211,)
    assert d.x_train.dtype == d.points_train.dtype == np.float64
    assert d.extent == EXTENT and d.features == list(FEATURES)
    y = all_targets(d)
    if d.spec.task == "classification":
        assert y.dtype == np.int64
        assert set(np.unique(y)) == {0, 1}
        assert d.target_range is None
    else:
        assert y.dtype == np.float64
        assert d.target_range == (-1.0, 1.0)
        assert y.min() >= -1 and y.max() <= 1 and y.std() > 0.1


@pytest.mark.parametrize(
    ("n", "ratio", "n_train"), [(10, 0.5, 5), (10, 0.8, 8), (10, 0.0, 1), (10, 1.0, 9), (7, 0.5, 4)]
)
def test_split_sizes_keep_one_example_each_side(n, ratio, n_train):
    d = make_dataset("xor", n_samples=n, train_ratio=ratio)
    assert (len(d.y_train), len(d.y_test)) == (n_train, n - n_train)


@pytest.mark.parametrize("name", PLANAR)
def test_x_is_featurized_points(name):
    d = make_dataset(name, n_samples=50, features=("x2", "x1*x2"))
    p = d.points_train
    np.testing.assert_array_equal(d.x_train, np.column_stack([p[:, 1], p[:, 0] * p[:, 1]]))
    np.testing.assert_array_equal(d.x_test, featurize(d.points_test, ["x2", "x1*x2"]))


@pytest.mark.parametrize("name", list(DATASETS))
def test_same_seed_identical_other_seed_different(name):
    a, b = (make_dataset(name, n_samples=200, noise=0.2, seed=7) for _ in range(2))
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    c = make_dataset(name, n_samples=200, noise=0.2, seed=8)
    assert not np.array_equal(a.x_train, c.x_train)


@pytest.mark.parametrize("name", PLANAR)
def test_noise_changes_the_data(name):
    clean, noisy = (make_dataset(name, n_samples=400, noise=v, seed=1) for v in (0.0, 0.5))
    same_points = np.array_equal(all_points(clean), all_points(noisy))
    assert not (same_points and np.array_equal(all_targets(clean), all_targets(noisy)))


@pytest.mark.parametrize("name", ["circle", "xor", "plane", "multigauss"])
def test_label_noise_sets_keep_points_in_place(name):
    """As in Playground, noise moves where the target is read, not the plotted point."""
    clean, noisy = (make_dataset(name, n_samples=400, noise=v, seed=1) for v in (0.0, 0.5))
    np.testing.assert_array_equal(all_points(clean), all_points(noisy))
    assert np.abs(all_points(noisy)).max() <= 6
    assert not np.array_equal(all_targets(clean), all_targets(noisy))


@pytest.mark.parametrize("name", ["circle", "gauss", "spiral", "moons"])
def test_classes_balanced(name):
    counts = np.bincount(all_targets(make_dataset(name, n_samples=301)))
    assert sorted(counts) == [150, 151]


def test_circle_inner_class_inside_outer_ring():
    d = make_dataset("circle", n_samples=1000)
    r, y = np.hypot(*all_points(d).T), all_targets(d)
    assert r[y == 1].max() < 2.5 <= 3.5 <= r[y == 0].min()
    assert r[y == 0].max() <= 5


def test_xor_label_is_sign_of_product_and_padded():
    d = make_dataset("xor", n_samples=1000)
    p, y = all_points(d), all_targets(d)
    np.testing.assert_array_equal(y, (p[:, 0] * p[:, 1] >= 0).astype(np.int64))
    assert np.abs(p).min() >= 0.3 and np.abs(p).max() <= 5.3


def test_gauss_centres_and_spread_growing_with_noise():
    def spread(noise):
        d = make_dataset("gauss", n_samples=4000, noise=noise)
        p, y = all_points(d), all_targets(d)
        np.testing.assert_allclose(p[y == 1].mean(axis=0), [2, 2], atol=0.15)
        np.testing.assert_allclose(p[y == 0].mean(axis=0), [-2, -2], atol=0.15)
        return p[y == 1].std()

    assert spread(0.0) == pytest.approx(np.sqrt(0.5), rel=0.05)
    assert spread(0.5) == pytest.approx(2.0, rel=0.05)


def test_spiral_points_lie_on_their_arm():
    d = make_dataset("spiral", n_samples=500)
    p, y = all_points(d), all_targets(d)
    r = np.hypot(*p.T)
    t = 1.75 * 2 * np.pi * r / 5 + np.pi * (y == 0)
    np.testing.assert_allclose(p, r[:, None] * np.column_stack([np.sin(t), np.cos(t)]), atol=1e-9)
    assert r.max() <= 5


def test_moons_points_lie_on_their_half_circle():
    d = make_dataset("moons", n_samples=500)
    p, y = all_points(d), all_targets(d)
    for label, centre, side in [(0, (-0.5, -0.25), 1), (1, (0.5, 0.25), -1)]:
        q = p[y == label] - MOON_RADIUS * np.array(centre)
        np.testing.assert_allclose(np.hypot(*q.T), MOON_RADIUS)
        assert (side * q[:, 1] >= -1e-9).all()
    assert np.abs(p[:, 0]).max() <= 5 + 1e-9


def test_plane_target_is_linear_without_noise():
    d = make_dataset("plane", n_samples=500)
    np.testing.assert_allclose(all_targets(d), all_points(d).sum(axis=1) / 12)


def test_multigauss_target_is_sum_of_signed_bumps():
    d = make_dataset("multigauss", n_samples=2000)
    p, y = all_points(d), all_targets(d)
    bumps = [(-4, 2.5, 1), (0, 2.5, -1), (4, 2.5, 1), (-4, -2.5, -1), (0, -2.5, 1), (4, -2.5, -1)]
    expected = sum(
        s * np.exp(-((p[:, 0] - cx) ** 2 + (p[:, 1] - cy) ** 2) / 2) for cx, cy, s in bumps
    )
    np.testing.assert_allclose(y, expected)
    assert y.max() > 0.9 and y.min() < -0.9


def test_featurize_columns_and_order():
    points = np.array([[1, 2], [-3, 0.5]])
    x = featurize(points, list(FEATURES))
    assert x.shape == (2, 7) and x.dtype == np.float64
    a, b = points[:, 0], points[:, 1]
    expected = [a, b, a**2, b**2, a * b, np.sin(a), np.sin(b)]
    np.testing.assert_allclose(x, np.column_stack(expected))
    np.testing.assert_array_equal(featurize(points, ["x2", "x1"]), points[:, ::-1])


@pytest.mark.parametrize("features", [["x1", "x3"], []])
def test_bad_features_rejected_with_valid_names(features):
    with pytest.raises(ValueError, match=r"x1\^2.*sin\(x2\)"):
        featurize(np.zeros((3, 2)), features)
    with pytest.raises(ValueError, match="x1"):
        make_dataset("circle", features=features)


def test_unknown_dataset_lists_valid_names():
    with pytest.raises(ValueError, match="'ring'.*circle.*multigauss.*digits"):
        make_dataset("ring")


@pytest.mark.parametrize(
    "kwargs", [{"noise": -0.1}, {"noise": 0.6}, {"train_ratio": 1.5}, {"n_samples": 1}]
)
def test_out_of_range_arguments_rejected(kwargs):
    with pytest.raises(ValueError):
        make_dataset("circle", **kwargs)


def test_grid_points_row_major_top_row_first():
    g = grid_points((-1.0, 3.0, -2.0, 2.0), size=5)
    assert g.shape == (25, 2)
    np.testing.assert_allclose(g[0], [-1, 2])  # top-left
    np.testing.assert_allclose(g[4], [3, 2])  # top-right
    np.testing.assert_allclose(g[5], [-1, 1])  # next row down
    np.testing.assert_allclose(g[-1], [3, -2])  # bottom-right
    cells = g.reshape(5, 5, 2)
    np.testing.assert_allclose(cells[:, 0, 1], [2, 1, 0, -1, -2])
    np.testing.assert_allclose(cells[0, :, 0], [-1, 0, 1, 2, 3])
    assert grid_points(EXTENT).shape == (64 * 64, 2)


def test_digits_whole_set_scaled_pixels_all_classes():
    d = make_dataset("digits", n_samples=10, train_ratio=0.75, features=("ignored",))
    x, y = np.vstack([d.x_train, d.x_test]), all_targets(d)
    assert x.shape == (1797, 64) and len(d.y_train) == round(1797 * 0.75)
    assert d.features == [f"px{i}" for i in range(64)]
    assert x.dtype == np.float64 and y.dtype == np.int64
    assert x.min() == 0 and x.max() == 1
    np.testing.assert_array_equal(x * 16, np.round(x * 16))  # 0..16 counts, rescaled
    # Per-class counts of the UCI test set, as scikit-learn's load_digits reports them.
    np.testing.assert_array_equal(
        np.bincount(y), [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    )
    assert set(np.unique(d.y_train)) == set(range(10))
    assert d.points_train is None and d.points_test is None
    assert d.extent is None and d.target_range is None


def test_digits_noise_perturbs_pixels_within_range_same_split():
    clean, noisy = (make_dataset("digits", noise=v, seed=3) for v in (0.0, 0.2))
    np.testing.assert_array_equal(clean.y_train, noisy.y_train)
    assert not np.array_equal(clean.x_train, noisy.x_train)
    assert noisy.x_train.min() >= 0 and noisy.x_train.max() <= 1
