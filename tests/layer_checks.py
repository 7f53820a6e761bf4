"""The checks every course_lib layer must pass, in one helper.

`check_layer(make_layer, inputs)` runs, for any layer:

1. an eager call and a symbolic call (through `keras.Input`) with equal outputs;
2. a config round trip (`from_config(get_config())`) with identical outputs;
3. a JSON serialisation round trip (`serialize_keras_object` -> JSON -> deserialise);
4. a `.keras` save and load of a model around the layer, with identical outputs;
5. one training step that changes the trainable weights (skipped for layers without).

`inputs` is a list of arrays passed positionally, or a dict of arrays passed by
keyword (for layers such as attention whose call takes `query=`, `value=`, ...).
`call_kwargs` are extra non-tensor arguments (for example `use_causal_mask=True`).
"""

import json

import keras
import numpy as np

from tests.helpers import to_numpy


def _call(layer, inputs, call_kwargs, **extra):
    if isinstance(inputs, dict):
        return layer(**inputs, **call_kwargs, **extra)
    return layer(*inputs, **call_kwargs, **extra)


def _first(outputs):
    return outputs[0] if isinstance(outputs, (tuple, list)) else outputs


def _numpy(outputs):
    """The outputs of a layer as a list of numpy arrays (one output or several)."""
    return to_numpy(list(outputs) if isinstance(outputs, (tuple, list)) else [outputs])


def assert_same_outputs(a, b, atol=1e-6, what="outputs"):
    a, b = _numpy(a), _numpy(b)
    assert len(a) == len(b), f"{what}: {len(a)} against {len(b)} tensors"
    for x, y in zip(a, b):
        assert x.shape == y.shape, f"{what}: shapes {x.shape} against {y.shape}"
        np.testing.assert_allclose(x, y, atol=atol, err_msg=what)


def _model_around(layer, inputs, call_kwargs):
    if isinstance(inputs, dict):
        symbolic = {k: keras.Input(shape=v.shape[1:], dtype=str(v.dtype), name=k) for k, v in inputs.items()}
    else:
        symbolic = [keras.Input(shape=v.shape[1:], dtype=str(v.dtype)) for v in inputs]
    outputs = _call(layer, symbolic, call_kwargs)
    return keras.Model(symbolic, outputs), symbolic


def check_layer(make_layer, inputs, call_kwargs=None, tmp_path=None, train=True, atol=1e-6):
    """Run the standard checks on the layer returned by `make_layer()`.

    Returns the eager outputs so that a test can add its own assertions."""
    call_kwargs = dict(call_kwargs or {})
    layer = make_layer()
    eager = _call(layer, inputs, call_kwargs)

    # 1. Symbolic call: same layer (same weights) inside a functional model.
    model, _ = _model_around(layer, inputs, call_kwargs)
    model_inputs = inputs if isinstance(inputs, dict) else list(inputs)
    symbolic = model(model_inputs)
    assert_same_outputs(eager, symbolic, atol, "eager against symbolic call")

    # 2. Config round trip.
    clone = layer.__class__.from_config(layer.get_config())
    _call(clone, inputs, call_kwargs)  # build
    clone.set_weights(layer.get_weights())
    assert_same_outputs(eager, _call(clone, inputs, call_kwargs), atol, "config round trip")
    assert clone.get_config() == layer.get_config(), "config changed in the round trip"

    # 3. JSON round trip.
    text = json.dumps(keras.saving.serialize_keras_object(layer))
    revived = keras.saving.deserialize_keras_object(json.loads(text))
    assert type(revived) is type(layer)
    assert revived.get_config() == layer.get_config(), "config changed in the JSON round trip"

    # 4. .keras save and load.
    if tmp_path is not None:
        path = str(tmp_path / f"{layer.name}.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        assert_same_outputs(symbolic, loaded(model_inputs), atol, ".keras save and load")

    # 5. One training step moves the weights.
    if train and layer.trainable_weights:
        before = [to_numpy(w).copy() for w in layer.trainable_weights]
        outputs = model(model_inputs)
        targets = [np.random.default_rng(0).normal(size=o.shape).astype("float32") for o in _numpy(outputs)]
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        model.fit(model_inputs, targets if len(targets) > 1 else targets[0], epochs=1, batch_size=len(targets[0]), verbose=0)
        after = [to_numpy(w) for w in layer.trainable_weights]
        assert any(not np.allclose(b, a) for b, a in zip(before, after)), "a training step changed no weight"
    return eager
