"""The network's maths against independent references: finite differences and plain numpy."""

import numpy as np
import pytest

from app.engine.nn import ACTIVATIONS, OUTPUTS, REGULARIZATIONS, Network

GRAD_RTOL = 1e-6  # relative error allowed between analytic and numerical gradients
FD_STEP = 1e-6  # central-difference step
HEADS = [(out, loss) for out, losses in OUTPUTS.items() for loss in losses]


def make_problem(activation, output, loss, regularization, seed=0):
    """A small net, a batch and its targets; targets shaped for the loss."""
    rng = np.random.default_rng(seed)
    n_out = 3 if output == "softmax" else 2 if output == "linear" else 1
    rate = 0.0 if regularization == "none" else 0.05
    net = Network([3, 5, 4, n_out], activation, output, loss, regularization, rate)
    net.params += rng.normal(0, 0.1, net.params.shape)  # non-zero biases too
    x = rng.normal(0, 1.5, (7, 3))
    if output == "softmax":
        y = rng.integers(0, n_out, 7)
    elif output == "sigmoid" and loss == "bce":
        y = rng.integers(0, 2, (7, 1)).astype(float)
    else:
        y = rng.uniform(0.1, 0.9, (7, n_out))
    return net, x, net.targets(y)


def numerical_gradient(net, x, t):
    grad = np.zeros_like(net.params)
    for j in range(len(net.params)):
        keep = net.params[j]
        net.params[j] = keep + FD_STEP
        up = net.loss(net.forward(x), t)
        net.params[j] = keep - FD_STEP
        down = net.loss(net.forward(x), t)
        net.params[j] = keep
        grad[j] = (up - down) / (2 * FD_STEP)
    return grad


@pytest.mark.parametrize("regularization", REGULARIZATIONS)
@pytest.mark.parametrize(("output", "loss"), HEADS)
@pytest.mark.parametrize("activation", list(ACTIVATIONS))
def test_gradients_match_central_differences(activation, output, loss, regularization):
    net, x, t = make_problem(activation, output, loss, regularization)
    analytic = net.backward(net.forward(x), t).copy()
    numeric = numerical_gradient(net, x, t)
    error = np.linalg.norm(analytic - numeric) / max(
        np.linalg.norm(analytic), np.linalg.norm(numeric)
    )
    assert error <= GRAD_RTOL, f"relative error {error:.2e}"
    assert np.count_nonzero(analytic) > len(analytic) // 2  # not trivially zero


def reference_forward(net, x):
    """Row-major forward from the public per-layer weights and biases."""
    fns = {
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "sigmoid": lambda z: 1 / (1 + np.exp(-z)),
        "linear": lambda z: z,
    }
    a = x
    for w, b in zip(net.weights[:-1], net.biases[:-1], strict=True):
        a = fns[net.activation](a @ w + b)
    z = a @ net.weights[-1] + net.biases[-1]
    if net.output == "softmax":
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return z, e / e.sum(axis=1, keepdims=True)
    return z, fns[net.output](z)


@pytest.mark.parametrize("activation", list(ACTIVATIONS))
@pytest.mark.parametrize(("output", "loss"), HEADS)
def test_forward_and_loss_match_a_plain_numpy_reference(activation, output, loss):
    net, x, t = make_problem(activation, output, loss, "none", seed=3)
    cache = net.forward(x)
    z, p = reference_forward(net, x)
    np.testing.assert_allclose(cache.logits.T, z, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cache.output, p, rtol=1e-12, atol=1e-14)
    tr = t.T
    if loss == "bce":
        expected = -np.mean(tr * np.log(p) + (1 - tr) * np.log(1 - p))
    elif loss == "softmax_ce":
        expected = -np.mean(np.sum(tr * np.log(p), axis=1))
    else:
        expected = 0.5 * np.sum((p - tr) ** 2) / len(x)
    assert net.data_loss(cache, t) == pytest.approx(expected, rel=1e-12)


def test_cross_entropy_stays_finite_when_saturated():
    net = Network([1, 1], "tanh", "sigmoid", "bce")
    net.weights[0][0, 0] = 1000.0
    x, t = np.array([[1.0], [-1.0]]), net.targets(np.array([0.0, 1.0]))
    loss = net.data_loss(net.forward(x), t)
    assert loss == pytest.approx(1000.0)  # confidently wrong by 1000 nats, not inf
    assert np.isfinite(net.backward(net.forward(x), t)).all()


def test_regularization_penalises_weights_not_biases():
    net = Network([2, 3, 1], regularization="l2", regularization_rate=0.5)
    net.biases[0][:] = 7.0
    w2 = sum(float((w * w).sum()) for w in net.weights)
    assert net.regularization_loss() == pytest.approx(0.25 * w2)
    net.regularization = "l1"
    assert net.regularization_loss() == pytest.approx(
        0.5 * sum(np.abs(w).sum() for w in net.weights)
    )


def test_parameter_views_share_one_flat_vector():
    net = Network([3, 4, 2], output="softmax", loss="softmax_ce")
    assert [w.shape for w in net.weights] == [(3, 4), (4, 2)]
    assert [b.shape for b in net.biases] == [(4,), (2,)]
    assert len(net.params) == 3 * 4 + 4 + 4 * 2 + 2
    net.params[:] = np.arange(len(net.params))
    seen = np.concatenate([np.ravel(v) for v in net.weights + net.biases])
    assert sorted(seen) == list(range(len(net.params)))  # every parameter exactly once
    net.weights[1][3, 1] = -5.0  # writes through to the flat vector
    assert -5.0 in net.params


def test_segment_sums_are_per_layer_weights_plus_biases():
    net = Network([2, 8, 8, 1])
    v = np.random.default_rng(1).normal(size=len(net.params))
    net.grads[:] = v
    expected = [gw.sum() + gb.sum() for gw, gb in zip(net.grad_w, net.grad_b, strict=True)]
    np.testing.assert_allclose(net.segment_sums(net.grads), expected, rtol=1e-12)
    both = net.segment_sums(np.vstack([net.grads, 2 * net.grads]))
    np.testing.assert_allclose(both, [expected, 2 * np.array(expected)], rtol=1e-12)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_initialisation_is_seeded_he_or_xavier_with_zero_biases(activation):
    a = Network([200, 300, 1], activation, seed=5)
    b = Network([200, 300, 1], activation, seed=5)
    c = Network([200, 300, 1], activation, seed=6)
    assert np.array_equal(a.params, b.params)
    assert not np.array_equal(a.params, c.params)
    expected = np.sqrt(2 / 200) if activation == "relu" else np.sqrt(2 / 500)
    assert a.weights[0].std() == pytest.approx(expected, rel=0.02)
    assert all(np.all(bias == 0) for bias in a.biases)


def test_float32_forward_agrees_with_float64():
    net, x, t = make_problem("tanh", "softmax", "softmax_ce", "none")
    exact = net.forward(x)
    fast = net.forward_columns(net.columns(x).astype(np.float32))
    assert fast.logits.dtype == np.float64
    np.testing.assert_allclose(fast.output, exact.output, rtol=1e-5, atol=1e-6)
    assert net.data_loss(fast, t) == pytest.approx(net.data_loss(exact, t), rel=1e-5)


def test_reused_buffers_give_the_same_answer():
    net, x, t = make_problem("sigmoid", "sigmoid", "bce", "none")
    bufs = net.allocate(len(x))
    first = net.forward_columns(net.columns(x), bufs).output.copy()
    net.forward_columns(net.columns(x[::-1].copy()), bufs)  # overwrite the buffers
    again = net.forward_columns(net.columns(x), bufs).output
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"activation": "swish"}, "unknown activation"),
        ({"output": "softmax", "loss": "bce"}, "does not pair"),
        ({"output": "linear", "loss": "softmax_ce"}, "does not pair"),
        ({"regularization": "l3"}, "unknown regularization"),
    ],
)
def test_invalid_network_choices_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Network([2, 3, 1], **kwargs)


def test_no_hidden_layers_is_logistic_regression():
    net = Network([2, 1], "tanh", "sigmoid", "bce")
    x = np.array([[1.0, 2.0], [-1.0, 0.5]])
    w, b = net.weights[0][:, 0], net.biases[0][0]
    np.testing.assert_allclose(net.predict(x)[:, 0], 1 / (1 + np.exp(-(x @ w + b))), rtol=1e-12)
    assert net.n_layers == 1
