"""Saving and loading models on hostile paths and files (issue #13): FIFOs, devices, deep nesting,
huge values, directories and symlinks in the way, leftovers of a killed save."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import minigrad_nn
import minigrad_nn.plugin
import minigrad_nn.serialize
import minigrad_ops
from minigrad_core import Registry, using
from minigrad_nn import MLP, ModelFileError, load, load_into, save

TIMEOUT = 20  # seconds a load may take before the test calls it hung


@pytest.fixture(autouse=True)
def nn_registry():
    with using(Registry.from_plugins(minigrad_ops, minigrad_nn.plugin)) as registry:
        yield registry


@pytest.fixture
def model():
    minigrad_nn.seed(5)
    return MLP(2, [3, 1], nonlin="relu", out_nonlin=None)


def numbers(net):
    return [p.data for p in net.parameters()]


def valid_document(net):
    return {"format": "minigrad-model", "version": 1, "architecture": net.architecture(), "parameters": numbers(net)}


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


def load_with_timeout(path):
    """What load(path) raises (or returns), failing the test instead of hanging if it blocks."""
    outcome = {}

    def run():
        try:
            outcome["value"] = load(path)
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(TIMEOUT)
    return thread, outcome


# -- 1. only regular files, and not too large -------------------------------------------------


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_loading_a_fifo_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "model.json"
    os.mkfifo(fifo)
    thread, outcome = load_with_timeout(fifo)
    if thread.is_alive():  # the old code waits in open() for a writer: release it, then fail
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(TIMEOUT)
        pytest.fail(f"load({str(fifo)!r}) blocked on a FIFO for {TIMEOUT} s")
    error = outcome.get("error")
    assert isinstance(error, ModelFileError), outcome
    message = str(error)
    assert str(fifo) in message and "FIFO" in message and "expected a regular file" in message


@pytest.mark.skipif(not os.path.exists("/dev/zero") or not hasattr(os, "symlink"), reason="needs /dev/zero")
def test_loading_a_symlink_to_dev_zero_is_refused_before_reading(tmp_path):
    # In a child process with a memory limit: a regression reads /dev/zero until MemoryError,
    # and must not take the machine's memory with it.
    link = tmp_path / "model.json"
    os.symlink("/dev/zero", link)
    script = textwrap.dedent(f"""
        import resource, sys
        resource.setrlimit(resource.RLIMIT_AS, (2 * 1024 ** 3, resource.RLIM_INFINITY))
        import minigrad_nn
        try:
            minigrad_nn.load({str(link)!r})
        except minigrad_nn.ModelFileError as error:
            print(error)
        except MemoryError:
            print("MemoryError")
    """)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env)
    message = done.stdout.strip()
    assert done.returncode == 0, done.stderr
    assert message.startswith(f"model file {str(link)!r}:"), message
    assert "character device" in message and "'/dev/zero'" in message and "expected a regular file" in message


def test_loading_a_file_over_the_size_cap_is_refused(model, tmp_path, monkeypatch):
    path = save(model, tmp_path / "m.json")
    size = os.path.getsize(path)
    monkeypatch.setattr(minigrad_nn.serialize, "MAX_FILE_BYTES", size - 1)
    with pytest.raises(ModelFileError, match=rf"is {size:,} bytes, more than the {size - 1:,} bytes"):
        load(path)
    monkeypatch.setattr(minigrad_nn.serialize, "MAX_FILE_BYTES", size)
    assert numbers(load(path)) == numbers(model)
    assert minigrad_nn.serialize.MAX_FILE_BYTES == size
    monkeypatch.undo()
    assert minigrad_nn.serialize.MAX_FILE_BYTES == 64 * 1024 * 1024


@pytest.mark.skipif(not os.path.isfile("/proc/self/maps"), reason="needs Linux's /proc")
def test_the_size_cap_holds_while_reading_a_file_whose_size_is_wrong(monkeypatch):
    # /proc files are regular files that say they are 0 bytes long.
    monkeypatch.setattr(minigrad_nn.serialize, "MAX_FILE_BYTES", 10)
    with pytest.raises(ModelFileError, match=r"/proc/self/maps.*more bytes than its size said, more than the 10 bytes"):
        load("/proc/self/maps")


def test_loading_a_dangling_symlink_names_where_it_points(tmp_path):
    os.symlink(tmp_path / "gone.json", tmp_path / "m.json")
    with pytest.raises(ModelFileError, match=r"symlink to .*gone\.json'?, which does not exist"):
        load(tmp_path / "m.json")


# -- 2. nesting ---------------------------------------------------------------------------------


DEEP = 10_000


@pytest.mark.parametrize(
    "text",
    [
        "[" * DEEP + "]" * DEEP,
        '{"a": ' * DEEP + "1" + "}" * DEEP,
        json.dumps(
            {
                "format": "minigrad-model",
                "version": 1,
                "architecture": {"type": "MLP", "nin": 2, "nouts": "X"},
                "parameters": [],
            }
        ).replace('"X"', "[" * DEEP + "]" * DEEP),
    ],
    ids=["lists", "objects", "inside the architecture"],
)
def test_a_file_nested_ten_thousand_deep_is_refused(model, tmp_path, text):
    path = tmp_path / "deep.json"
    path.write_text(text)
    before = numbers(model)
    with pytest.raises(ModelFileError, match="nested too deeply") as caught:
        load_into(model, path)
    assert str(path) in str(caught.value)
    assert numbers(model) == before
    with pytest.raises(ModelFileError, match="nested too deeply"):
        load(path)


# -- 3. error messages stay short ---------------------------------------------------------------


HUGE = 5_000_000  # characters; the file stays under the 64 MiB cap


@pytest.mark.parametrize("where", ["format", "version", "parameter", "type", "nonlin", "nouts"])
def test_a_huge_value_in_a_file_makes_a_short_message(model, tmp_path, where):
    document = valid_document(model)
    huge = "x" * HUGE
    if where == "format":
        document["format"] = huge
    elif where == "version":
        document["version"] = huge
    elif where == "parameter":
        document["parameters"][2] = huge
    elif where == "type":
        document["architecture"]["type"] = huge
    elif where == "nonlin":
        document["architecture"]["nonlin"] = huge
    elif where == "nouts":
        document["architecture"]["nouts"] = [3, huge]
    path = tmp_path / "m.json"
    path.write_text(json.dumps(document))
    for attempt in (lambda: load(path), lambda: load_into(MLP(2, [3, 1], nonlin="relu", out_nonlin=None), path)):
        with pytest.raises(ModelFileError) as caught:
            attempt()
        message = str(caught.value)
        assert len(message) < 2000, message[:3000]
        assert str(path) in message
        assert "xxxxxxxxxx" in message and "more characters)" in message


def test_the_quoting_helper_cuts_a_300_million_character_string():
    shown = minigrad_nn.serialize._quote("y" * 300_000_000)
    assert shown == repr("y" * 200) + "... (299,999,800 more characters)"
    assert minigrad_nn.serialize._quote("short") == "'short'"
    assert minigrad_nn.serialize._quote(list(range(1000))).endswith(" more characters)")
    nested = []
    for _ in range(100_000):
        nested = [nested]
    assert "nested too deeply" in minigrad_nn.serialize._quote(nested)


# -- 4. save ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "metadata, where",
    [
        ({"loss": float("nan")}, r"metadata\['loss'\] is nan"),
        ({"history": {"val": [0.5, float("inf")]}}, r"metadata\['history'\]\['val'\]\[1\] is inf"),
    ],
)
def test_nan_in_the_metadata_is_a_model_file_error_naming_the_key(model, tmp_path, metadata, where):
    path = tmp_path / "m.json"
    with pytest.raises(ModelFileError, match=where + ".*expected a finite number") as caught:
        save(model, path, metadata=metadata)
    assert str(path) in str(caught.value) and "cannot save" in str(caught.value)
    assert os.listdir(tmp_path) == []


def test_metadata_json_cannot_hold_is_a_model_file_error_that_is_still_a_type_error(model, tmp_path):
    with pytest.raises(ModelFileError, match=r"metadata\['tags'\] is \{1\}, a set; expected what JSON holds") as caught:
        save(model, tmp_path / "m.json", metadata={"tags": {1}})
    assert isinstance(caught.value, TypeError)
    loop = {}
    loop["self"] = loop
    with pytest.raises(ModelFileError, match=r"metadata\['self'\] contains itself"):
        save(model, tmp_path / "m.json", metadata=loop)
    deep = {}
    for _ in range(DEEP):
        deep = {"a": deep}
    with pytest.raises(ModelFileError, match="metadata is nested too deeply"):
        save(model, tmp_path / "m.json", metadata=deep)
    assert os.listdir(tmp_path) == []


def test_saving_onto_a_directory_names_the_target_not_the_temporary_file(model, tmp_path):
    target = tmp_path / "models"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(ModelFileError, match="the target is a directory") as caught:
        save(model, target)
    message = str(caught.value)
    assert message.startswith(f"model file {str(target)!r}:") and ".tmp" not in message
    assert isinstance(caught.value, IsADirectoryError)  # what save raised before, still caught as OSError
    assert os.listdir(tmp_path) == ["models"] and os.listdir(target) == ["keep.txt"]


def test_save_os_errors_are_model_file_errors_that_are_still_os_errors(model, tmp_path, monkeypatch):
    def full(*args):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(minigrad_nn.serialize.os, "fsync", full)
    with pytest.raises(ModelFileError, match="cannot save: No space left on device") as caught:
        save(model, tmp_path / "m.json")
    assert isinstance(caught.value, OSError) and caught.value.errno == 28
    assert str(tmp_path / "m.json") in str(caught.value) and ".tmp" not in str(caught.value)
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symlinks")
def test_saving_through_a_symlink_writes_its_target_and_keeps_the_link(model, tmp_path):
    real = tmp_path / "store" / "real.json"
    real.parent.mkdir()
    real.write_text("old")
    link = tmp_path / "model.json"
    os.symlink(os.path.join("store", "real.json"), link)
    assert save(model, link) == str(link)
    assert os.path.islink(link) and os.readlink(link) == os.path.join("store", "real.json")
    assert numbers(load(real)) == numbers(model) and numbers(load(link)) == numbers(model)
    assert sorted(os.listdir(tmp_path)) == ["model.json", "store"] and os.listdir(real.parent) == ["real.json"]
    # A link to a file that does not exist yet: the file is created where the link points.
    dangling = tmp_path / "next.json"
    os.symlink(tmp_path / "store" / "new.json", dangling)
    save(model, dangling)
    assert os.path.islink(dangling) and numbers(load(tmp_path / "store" / "new.json")) == numbers(model)


KILLED_SAVE = """
import os, signal, sys
import minigrad_nn
os.replace = lambda *args: os.kill(os.getpid(), signal.SIGKILL)  # die just before the rename
minigrad_nn.save(minigrad_nn.MLP(2, [3, 1], nonlin="relu"), sys.argv[1])
"""


@pytest.mark.skipif(os.name != "posix", reason="kills a process with SIGKILL")
def test_the_next_save_removes_what_a_killed_save_left_behind(model, tmp_path):
    path = tmp_path / "m.json"
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    with subprocess.Popen([sys.executable, "-c", KILLED_SAVE, str(path)], stderr=subprocess.PIPE, env=env) as done:
        _, stderr = done.communicate(timeout=120)
    assert done.returncode == -signal.SIGKILL, stderr
    leftovers = temporaries(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(f".m.json.{done.pid}.")
    others = [
        "notes.tmp",
        ".m.json.tmp",
        ".m.json.backup",
        ".m.json.abcdefgh.tmp",  # not this module's pattern
        f".other.json.{done.pid}.abcdefgh.tmp",  # another file's temporary
        f".m.json.{os.getppid()}.abcdefgh.tmp",  # a save that may still be running (its process lives)
    ]
    for name in others:
        (tmp_path / name).write_text("not yours")
    save(model, path)
    assert sorted(os.listdir(tmp_path)) == sorted(["m.json", *others])
    assert numbers(load(path)) == numbers(model)
