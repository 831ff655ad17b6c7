"""Saving and loading models as JSON: exact round trips, atomic writes, bad files refused."""

import json
import os

import pytest

import minigrad_nn
import minigrad_nn.plugin
import minigrad_nn.serialize
import minigrad_ops
from minigrad_core import Registry, using
from minigrad_nn import MLP, Layer, ModelFileError, Neuron, load, load_into, save


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin)) as registry:
        yield registry


@pytest.fixture
def model():
    minigrad_nn.seed(11)
    net = MLP(2, [5, 3, 1], nonlin="relu", out_nonlin=None)
    for i, p in enumerate(net.parameters()):  # awkward floats: a round trip must keep every bit
        p.data = p.data / 3.0 + i * 1e-17 + (1e-300 if i == 0 else 0.0)
    return net


def numbers(net):
    return [p.data for p in net.parameters()]


def test_the_file_says_what_it_is(model, tmp_path):
    path = save(model, tmp_path / "model.json")
    document = json.loads((tmp_path / "model.json").read_text())
    assert path == str(tmp_path / "model.json")
    assert document["format"] == "minigrad-model" and document["version"] == 1
    assert document["architecture"] == {
        "type": "MLP",
        "nin": 2,
        "nouts": [5, 3, 1],
        "nonlin": "relu",
        "out_nonlin": None,
    }
    assert document["parameters"] == numbers(model)


def test_load_rebuilds_the_model_exactly(model, tmp_path):
    save(model, tmp_path / "m.json")
    loaded = load(tmp_path / "m.json")
    assert isinstance(loaded, MLP) and repr(loaded) == repr(model)
    assert numbers(loaded) == numbers(model)  # bit for bit
    x = [0.3, -1.1]
    assert loaded(x).data == model(x).data


@pytest.mark.parametrize("make", [lambda: Neuron(3, "tanh"), lambda: Layer(2, 4, None), lambda: MLP(1, [1], "sigmoid")])
def test_every_kind_of_model_round_trips(make, tmp_path):
    original = make()
    save(original, tmp_path / "m.json")
    loaded = load(tmp_path / "m.json")
    assert type(loaded) is type(original)
    assert loaded.architecture() == original.architecture()
    assert numbers(loaded) == numbers(original)


def test_load_into_fills_an_existing_model(model, tmp_path):
    save(model, tmp_path / "m.json")
    other = MLP(2, [5, 3, 1], nonlin="relu", out_nonlin=None)
    assert numbers(other) != numbers(model)
    assert load_into(other, tmp_path / "m.json") is other
    assert numbers(other) == numbers(model)


def test_saving_writes_atomically_and_a_failed_write_keeps_the_old_file(model, tmp_path, monkeypatch):
    path = tmp_path / "m.json"
    save(model, path)
    before = path.read_bytes()
    model.parameters()[0].data = 123.0

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(minigrad_nn.serialize.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save(model, path)
    assert path.read_bytes() == before  # the old file is whole
    assert os.listdir(tmp_path) == ["m.json"]  # and the temporary file is gone
    monkeypatch.undo()
    save(model, path)
    assert load(path).parameters()[0].data == 123.0
    assert os.listdir(tmp_path) == ["m.json"]


def test_a_saved_file_has_an_ordinary_files_permissions(model, tmp_path):
    umask = os.umask(0o022)
    try:
        save(model, tmp_path / "m.json")
    finally:
        os.umask(umask)
    assert (tmp_path / "m.json").stat().st_mode & 0o777 == 0o644


def test_a_model_holding_nan_is_not_saved(model, tmp_path):
    model.parameters()[3].data = float("nan")
    with pytest.raises(ValueError, match=r"parameter 3 is nan.*finite"):
        save(model, tmp_path / "m.json")
    assert not (tmp_path / "m.json").exists()


def valid_document(model):
    return {
        "format": "minigrad-model",
        "version": 1,
        "architecture": model.architecture(),
        "parameters": numbers(model),
    }


def corrupt(model, tmp_path, kind):
    """Write one kind of bad file; return its path and the problem the error must name."""
    path = tmp_path / "bad.json"
    good = json.dumps(valid_document(model))
    document = valid_document(model)
    if kind == "truncated":
        path.write_text(good[: len(good) // 2])
        return path, "not valid JSON.*truncated"
    if kind == "empty":
        path.write_text("")
        return path, "the file is empty"
    if kind == "binary":
        path.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
        return path, "not a text file"
    if kind == "garbage":
        path.write_text("{not json at all")
        return path, "not valid JSON"
    if kind == "a list":
        path.write_text("[1, 2, 3]")
        return path, "expected a JSON object"
    if kind == "other format":
        document["format"] = "pickle"
    elif kind == "future version":
        document["version"] = 2
    elif kind == "no architecture":
        del document["architecture"]
    elif kind == "unknown type":
        document["architecture"] = {"type": "Transformer"}
    elif kind == "missing parameter":
        document["parameters"].pop()
    elif kind == "text parameter":
        document["parameters"][4] = "0.5"
    elif kind == "bool parameter":
        document["parameters"][4] = True
    elif kind == "NaN":
        path.write_text(good.replace(str(numbers(model)[2]), "NaN", 1))
        return path, "NaN is not a number a model can hold"
    elif kind == "overflow":
        path.write_text(good.replace(str(numbers(model)[2]), "1e400", 1))
        return path, "parameter 2 is inf, not a finite float"
    elif kind == "bad size":
        document["architecture"]["nouts"] = [5, 0, 1]
    problems = {
        "other format": "not a MiniGrad model: \"format\" is 'pickle'",
        "future version": "format version 2 is not supported",
        "no architecture": '"architecture" must be an object',
        "unknown type": "holds Transformer.* but the model is MLP",
        "missing parameter": "has 37 parameters but the file lists 36",
        "text parameter": "parameter 4 is '0.5', not a number",
        "bool parameter": "parameter 4 is True, not a number",
        "bad size": "bad architecture.*must be a whole number >= 1, got 0",
    }
    path.write_text(json.dumps(document))
    return path, problems[kind]


KINDS = [
    "truncated",
    "empty",
    "binary",
    "garbage",
    "a list",
    "other format",
    "future version",
    "no architecture",
    "unknown type",
    "missing parameter",
    "text parameter",
    "bool parameter",
    "NaN",
    "overflow",
    "bad size",
]


@pytest.mark.parametrize("kind", KINDS)
def test_a_bad_file_is_refused_and_the_model_is_left_unchanged(model, tmp_path, kind):
    path, problem = corrupt(model, tmp_path, kind)
    target = MLP(2, [5, 3, 1], nonlin="relu", out_nonlin=None)
    before = numbers(target)
    with pytest.raises(ModelFileError, match=problem) as caught:
        load_into(target, path)
    assert str(path) in str(caught.value)  # the error names the file
    assert isinstance(caught.value, ValueError)
    assert numbers(target) == before
    if kind == "unknown type":
        problem = "cannot build a model of type 'Transformer'; known types: Neuron, Layer, MLP"
    with pytest.raises(ModelFileError, match=problem):
        load(path)


def test_a_file_for_another_architecture_is_refused_by_load_into(model, tmp_path):
    save(model, tmp_path / "m.json")
    other = MLP(2, [5, 3, 1], nonlin="tanh", out_nonlin=None)
    before = numbers(other)
    with pytest.raises(
        ModelFileError,
        match=r"holds MLP\(nin=2, nouts=\[5, 3, 1\], nonlin='relu'.* but the model is "
        r"MLP\(nin=2, nouts=\[5, 3, 1\], nonlin='tanh'",
    ):
        load_into(other, tmp_path / "m.json")
    assert numbers(other) == before
    with pytest.raises(ModelFileError, match=r"holds MLP.*but the model is Layer"):
        load_into(Layer(2, 5), tmp_path / "m.json")


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ModelFileError, match=r"nowhere\.json.*no such file"):
        load(tmp_path / "nowhere.json")


def test_an_unknown_nonlin_in_a_file_is_refused(model, tmp_path):
    document = valid_document(model)
    document["architecture"]["nonlin"] = "swish"
    (tmp_path / "m.json").write_text(json.dumps(document))
    with pytest.raises(ModelFileError, match=r"cannot build the architecture.*unknown op 'swish'"):
        load(tmp_path / "m.json")


def test_metadata_rides_along(model, tmp_path):
    save(model, tmp_path / "m.json", metadata={"accuracy": 1.0})
    assert json.loads((tmp_path / "m.json").read_text())["metadata"] == {"accuracy": 1.0}
    assert numbers(load(tmp_path / "m.json")) == numbers(model)


def test_loading_a_folder_or_saving_into_a_missing_folder_gets_a_clear_error(tmp_path):
    model = minigrad_nn.MLP(2, [3, 1])
    with pytest.raises(minigrad_nn.ModelFileError, match=str(tmp_path)):
        minigrad_nn.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        minigrad_nn.save(model, tmp_path / "missing" / "model.json")
    assert not (tmp_path / "missing").exists()
