"""Saving and loading a model's parameters as JSON (never pickle: loading runs no code).

    {"format": "minigrad-model", "version": 1,
     "architecture": {"type": "MLP", "nin": 2, "nouts": [16, 16, 1], "nonlin": "relu", "out_nonlin": null},
     "parameters": [0.123, -0.456, ...]}

``parameters`` lists the numbers in ``model.parameters()`` order (layer by layer, neuron by
neuron, each neuron's weights then its bias). JSON writes a float so that reading it back
gives the very same float, so a round trip is exact.

A file is written to a temporary file beside it and renamed over it at the end, so a crash
never leaves half a file. Loading checks everything before touching the model: a corrupt,
truncated or mismatched file raises ModelFileError and leaves the model as it was.

Hostile or mistaken paths are refused with a ModelFileError too, never a hang or a flood:

* ``load`` reads only regular files (after following symlinks): a FIFO, a device such as
  ``/dev/zero``, a directory or a socket is refused before it is read, and a FIFO is opened
  without blocking. A file may hold at most ``MAX_FILE_BYTES`` (64 MiB), checked from its
  size and again while reading, which never reads more than that plus one byte.
* JSON nested too deeply to read (``[[[[...]]]]`` 10,000 levels down) is refused.
* Error messages quote values from a file cut to about ``QUOTE_LIMIT`` (200) characters,
  saying how much was cut, so a huge string never makes a huge message.
* ``save`` reports what goes wrong (no such folder, a directory in the way, a full disk,
  NaN in the metadata ...) as a ModelFileError naming the file; one caused by an OSError or
  a TypeError is an instance of that class as well, so ``except OSError`` still catches it.
  Saving through a symlink writes the file it points to and keeps the link. Temporary files
  left by a save that was killed (``.NAME.PID.RANDOM.tmp`` beside the file, PID that of a
  process that no longer runs) are removed by the next save to the same file.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import tempfile
import time
from typing import Any

from minigrad_core import MiniGradError

from .nn import MLP, Layer, Module, Neuron

FORMAT = "minigrad-model"
VERSION = 1

MAX_FILE_BYTES = 64 * 1024 * 1024
"""The largest model file ``load`` and ``load_into`` read, and ``save`` writes: 64 MiB.

A parameter takes about 20 bytes of JSON, so this is room for some three million
parameters, far more than a scalar engine trains. The cap keeps a wrong path (a log file,
a disk image, ``/dev/zero``) from eating all memory. It is looked up at each call, so a
program that needs more can raise it: ``minigrad_nn.serialize.MAX_FILE_BYTES = 2**30``.
"""

QUOTE_LIMIT = 200
"""How many characters of a value from a file an error message shows before it cuts the rest."""

STALE_TEMPORARY_SECONDS = 3600
"""Where a process cannot be asked whether it still runs (Windows), how old a temporary file
of this module must be before a save takes it for the leftover of a killed save."""

_TOO_DEEP = (
    "the JSON is nested too deeply to read; expected a model file, whose objects and lists nest only a few levels"
)


class ModelFileError(MiniGradError, ValueError):
    """A model file that cannot be loaded: it names the file and what is wrong with it."""

    def __init__(self, path, problem: str):
        self.path, self.problem = os.fspath(path), problem
        super().__init__(f"model file {self.path!r}: {problem}")


_KINDRED_ERRORS: dict[type, type] = {}


def _error_like(error: BaseException | type, path, problem: str) -> ModelFileError:
    """A ModelFileError that is also of the class of ``error`` when that is an OSError or a
    TypeError, so code that caught what ``save`` raised before (``except OSError``) still does.
    An OSError's errno and strerror are kept, and its filename becomes ``path``."""
    kind = error if isinstance(error, type) else type(error)
    cls: type[ModelFileError] = ModelFileError
    if issubclass(kind, (OSError, TypeError)) and not issubclass(kind, ModelFileError):
        kindred = _KINDRED_ERRORS.get(kind)
        if kindred is None:
            try:
                kindred = type(
                    f"ModelFile{kind.__name__}",
                    (ModelFileError, kind),
                    {
                        "__module__": __name__,
                        "__doc__": f"A ModelFileError that is also a {kind.__name__}.",
                        "__str__": BaseException.__str__,  # the message, not OSError's "[Errno n] ..."
                    },
                )
            except TypeError:  # a class that cannot be combined with ValueError
                kindred = ModelFileError
            _KINDRED_ERRORS[kind] = kindred
        cls = kindred
    result = cls(path, problem)
    if isinstance(result, OSError):
        result.errno = getattr(error, "errno", None)
        result.strerror = getattr(error, "strerror", None)
        result.filename = os.fspath(path)
    return result


def _clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters, saying how many more there were."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}... ({len(text) - limit:,} more characters)"


def _quote(value, limit: int = QUOTE_LIMIT) -> str:
    """``repr(value)`` for an error message, cut to about ``limit`` characters (see ``_clip``).

    A long string is cut before it is quoted, so a 300 MB string is never copied whole, and
    the count says how many of its characters were left out.
    """
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value) - limit:,} more characters)"
    try:
        text = repr(value)
    except RecursionError:
        return f"a {type(value).__name__} nested too deeply to show"
    except ValueError:  # an int with more digits than Python converts to text
        return f"a {type(value).__name__} too large to show"
    return _clip(text, limit)


def _size_text(n: int) -> str:
    if n >= 1024 * 1024 and n % (1024 * 1024) == 0:
        return f"{n:,} bytes ({n // (1024 * 1024)} MiB)"
    return f"{n:,} bytes"


# ---------------------------------------------------------------------------------------------
# save


def save(model: Module, path, metadata: dict | None = None) -> str:
    """Write ``model``'s architecture and parameters to ``path`` as JSON, atomically; returns the path.

    Anything that goes wrong raises ModelFileError naming ``path``; see the module's docstring.
    """
    path = os.fspath(path)
    values = [p.data for p in model.parameters()]
    for i, x in enumerate(values):
        if not _is_finite(x):
            raise ModelFileError(
                path,
                f"cannot save {_quote(model)}: parameter {i} is {_quote(x)}; expected a finite number: "
                f"JSON holds only finite numbers (the training probably diverged: try a smaller learning rate)",
            )
    document: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "architecture": model.architecture(),
        "parameters": values,
    }
    if metadata:
        document["metadata"] = metadata
    text = _to_json(document, path)
    limit = MAX_FILE_BYTES
    if len(text) > limit:  # the text is ASCII (ensure_ascii), so characters are bytes
        raise ModelFileError(
            path,
            f"cannot save: the file would be {_size_text(len(text))}, more than the {_size_text(limit)} "
            f"that load reads (minigrad_nn.serialize.MAX_FILE_BYTES); expected a smaller model or metadata",
        )
    _write_atomically(path, text)
    return path


def _is_finite(x) -> bool:
    try:
        return math.isfinite(x)
    except (TypeError, ValueError, OverflowError):
        return True  # not a float at all: _to_json names it if JSON cannot hold it


def _to_json(document: dict, path: str) -> str:
    try:
        return json.dumps(document, indent=1, allow_nan=False) + "\n"
    except (ValueError, TypeError, RecursionError) as error:
        failure = error
    deep, problem = isinstance(failure, RecursionError), None
    if not deep:
        try:
            for name in ("architecture", "parameters", "metadata"):
                if name in document and (problem := _unsavable(document[name], name, set())) is not None:
                    break
        except RecursionError:
            deep = True
    if deep:
        where = "the metadata" if "metadata" in document else "the architecture"
        problem = f"{where} is nested too deeply to write; expected dicts and lists a few levels deep"
    elif problem is None:
        problem = f"JSON cannot hold the model: {_clip(str(failure))}"
    raise _error_like(failure, path, f"cannot save: {problem}") from None


def _unsavable(value, where: str, open_containers: set[int]) -> str | None:
    """What JSON cannot hold in ``value`` (found at ``where``, e.g. "metadata['loss']"), or None."""
    if value is None or isinstance(value, (str, bool, int)):
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return (
            f"{where} is {value!r}; expected a finite number (JSON has no NaN or infinity: "
            f"store None or a string instead)"
        )
    if not isinstance(value, (dict, list, tuple)):
        return (
            f"{where} is {_quote(value)}, a {type(value).__name__}; expected what JSON holds "
            f"(a str, int, float, bool, None, list or dict)"
        )
    if id(value) in open_containers:
        return f"{where} contains itself; expected a tree of dicts and lists, without cycles"
    open_containers.add(id(value))
    try:
        if isinstance(value, dict):
            for key, item in value.items():
                if key is not None and not isinstance(key, (str, int, float, bool)):
                    return f"{where} has the key {_quote(key)}, a {type(key).__name__}; expected keys that are strings"
                if isinstance(key, float) and not math.isfinite(key):
                    return f"{where} has the key {key!r}; expected keys that are strings"
                problem = _unsavable(item, f"{where}[{_quote(key, 60)}]", open_containers)
                if problem is not None:
                    return problem
        else:
            for i, item in enumerate(value):
                problem = _unsavable(item, f"{where}[{i}]", open_containers)
                if problem is not None:
                    return problem
    finally:
        open_containers.discard(id(value))
    return None


def _write_atomically(path: str, text: str) -> None:
    target = _save_target(path)
    folder, base = os.path.split(target)
    try:
        folder_info = os.stat(folder)
    except FileNotFoundError as error:
        raise _error_like(
            error, path, f"cannot save: the folder {folder!r} does not exist; expected an existing folder"
        ) from None
    except OSError as error:
        raise _error_like(
            error, path, f"cannot save: cannot reach the folder {folder!r}: {error.strerror or error}"
        ) from None
    if not stat.S_ISDIR(folder_info.st_mode):
        raise _error_like(
            NotADirectoryError,
            path,
            f"cannot save: {folder!r} is {_file_kind(folder_info.st_mode)}, not a folder; expected an existing folder",
        )
    try:
        target_info = os.stat(target)
    except FileNotFoundError:
        target_info = None
    except OSError as error:
        raise _error_like(error, path, f"cannot save: {error.strerror or error}") from None
    if target_info is not None and not stat.S_ISREG(target_info.st_mode):
        kind = _file_kind(target_info.st_mode)
        leads = "" if target == os.path.abspath(path) else f" (the path leads to {target!r})"
        example = f"; e.g. {os.path.join(path, 'model.json')!r}" if stat.S_ISDIR(target_info.st_mode) else ""
        raise _error_like(
            IsADirectoryError if stat.S_ISDIR(target_info.st_mode) else OSError,
            path,
            f"cannot save: the target is {kind}{leads}; expected the path of a regular file "
            f"or of one to create{example}",
        )
    mode = target_info.st_mode & 0o7777 if target_info is not None else _new_file_mode()
    _remove_stale_temporaries(folder, base)
    try:
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=f".{base}.{os.getpid()}.", suffix=".tmp")
    except OSError as error:
        raise _error_like(
            error, path, f"cannot save: cannot create a temporary file in {folder!r}: {error.strerror or error}"
        ) from None
    step = "writing the file"
    try:
        os.chmod(temporary, mode)  # mkstemp makes it private; give it a normal file's mode
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())  # the bytes are on disk before the name points at them
        step = "moving the finished file into place"
        os.replace(temporary, target)
    except BaseException as error:
        try:
            os.unlink(temporary)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise _error_like(error, path, f"cannot save: {error.strerror or error} (while {step})") from None
        raise


def _save_target(path: str) -> str:
    """The file ``save`` writes: ``path`` made absolute, or, where it is a symlink, the file
    the link points to (so the link stays a link)."""
    try:
        return os.path.realpath(path, strict=True)
    except (FileNotFoundError, NotADirectoryError):  # the folder check that follows says which
        return os.path.realpath(path)  # a new file (or a link to one): write where it points
    except OSError as error:  # a symlink loop, a folder that cannot be searched ...
        raise _error_like(error, path, f"cannot save: cannot follow the path: {error.strerror or error}") from None


def _new_file_mode() -> int:
    """What a newly created file gets: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _temporary_pattern(base: str) -> re.Pattern:
    """The names ``_write_atomically`` gives its temporary files for a file named ``base``:
    ``.BASE.PID.RANDOM.tmp`` (RANDOM as tempfile.mkstemp makes it)."""
    return re.compile(re.escape(f".{base}.") + r"([0-9]+)\.[a-z0-9_]+" + re.escape(".tmp"))


def _remove_stale_temporaries(folder: str, base: str) -> None:
    """Remove the temporary files that saves of ``base`` which were killed left in ``folder``.

    Only names of this module's own pattern for ``base`` are touched, and only when the process
    the name records has ended (a save still running elsewhere keeps its file). Failing to remove
    one is no reason to fail the save.
    """
    pattern = _temporary_pattern(base)
    try:
        with os.scandir(folder) as entries:
            candidates = [(entry, match) for entry in entries if (match := pattern.fullmatch(entry.name))]
    except OSError:
        return
    for entry, match in candidates:
        try:
            if entry.is_file(follow_symlinks=False) and _writer_is_gone(int(match[1]), entry):
                os.unlink(entry.path)
        except OSError:
            pass


def _writer_is_gone(pid: int, entry: os.DirEntry) -> bool:
    if pid == os.getpid():
        return False  # a save running in another thread of this process
    if os.name == "posix":
        try:
            os.kill(pid, 0)  # signal 0 only asks whether the process exists
        except ProcessLookupError:
            return True
        except (OSError, OverflowError, ValueError):  # it exists but is not ours, or no such pid at all
            return False
        return False
    # Elsewhere os.kill would end the process; only an old file counts as left over.
    return time.time() - entry.stat(follow_symlinks=False).st_mtime > STALE_TEMPORARY_SECONDS


# ---------------------------------------------------------------------------------------------
# load


def _file_kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _check_regular_file(path, info: os.stat_result) -> None:
    if stat.S_ISREG(info.st_mode):
        return
    real, given = os.path.realpath(path), os.path.abspath(path)
    leads = "" if real == given else f" (the path leads to {real!r})"
    raise ModelFileError(
        path, f"is {_file_kind(info.st_mode)}{leads}, not a regular file; expected a regular file holding a JSON model"
    )


def _too_large(path, size_text: str, limit: int) -> ModelFileError:
    return ModelFileError(
        path,
        f"{size_text}, more than the {_size_text(limit)} a model file may hold "
        f"(minigrad_nn.serialize.MAX_FILE_BYTES); expected a MiniGrad model file",
    )


def _read_text(path) -> str:
    """The text of the regular file ``path``, read without blocking and at most MAX_FILE_BYTES long."""
    limit = MAX_FILE_BYTES
    try:
        info = os.stat(path)  # follows symlinks: what matters is what is read
    except FileNotFoundError:
        try:
            dangling = f"is a symlink to {os.readlink(path)!r}, which does not exist"
        except OSError:  # not a symlink
            dangling = "no such file"
        raise ModelFileError(path, dangling) from None
    except OSError as error:  # no permission, a symlink loop, ...
        raise ModelFileError(path, error.strerror or str(error)) from None
    _check_regular_file(path, info)  # before opening: opening a FIFO would wait for a writer
    if info.st_size > limit:
        raise _too_large(path, f"is {_size_text(info.st_size)}", limit)
    flags = os.O_RDONLY
    for name in ("O_NONBLOCK", "O_NOCTTY", "O_CLOEXEC", "O_BINARY"):
        flags |= getattr(os, name, 0)
    try:
        handle = os.open(path, flags)
    except FileNotFoundError:
        raise ModelFileError(path, "no such file") from None
    except OSError as error:
        raise ModelFileError(path, error.strerror or str(error)) from None
    try:
        file = open(handle, "rb")
    except BaseException:
        os.close(handle)
        raise
    try:
        with file:
            info = os.fstat(handle)  # the path may have been swapped since it was checked
            _check_regular_file(path, info)
            if info.st_size > limit:
                raise _too_large(path, f"is {_size_text(info.st_size)}", limit)
            data = file.read(limit + 1)  # never more than one byte past the cap
    except OSError as error:
        raise ModelFileError(path, error.strerror or str(error)) from None
    if len(data) > limit:  # a file whose size said otherwise (e.g. in /proc), or one still growing
        raise _too_large(path, "holds more bytes than its size said", limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ModelFileError(path, f"not a text file ({error.reason} at byte {error.start}); expected JSON") from None


def read(path) -> tuple[dict, list[float]]:
    """The checked architecture and parameter values of a model file (the model is not touched)."""
    text = _read_text(path)
    if not text.strip():
        raise ModelFileError(path, "the file is empty")
    try:
        document = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as error:
        end = " (the file looks truncated)" if error.pos >= len(text.rstrip()) else ""
        where = f"line {error.lineno} column {error.colno}"
        raise ModelFileError(path, f"not valid JSON: {error.msg} at {where}{end}") from None
    except ValueError as error:  # NaN or Infinity, an int too long to convert ...
        raise ModelFileError(path, _clip(str(error), 4 * QUOTE_LIMIT)) from None
    except RecursionError:
        raise ModelFileError(path, _TOO_DEEP) from None
    if not isinstance(document, dict):
        raise ModelFileError(path, f'expected a JSON object with "format": {FORMAT!r}, got a {type(document).__name__}')
    if document.get("format") != FORMAT:
        raise ModelFileError(
            path, f'not a MiniGrad model: "format" is {_quote(document.get("format"))}, expected {FORMAT!r}'
        )
    version = document.get("version")
    if version != VERSION or isinstance(version, bool):
        raise ModelFileError(
            path, f"format version {_quote(version)} is not supported; this MiniGrad reads version {VERSION}"
        )
    architecture = document.get("architecture")
    if not isinstance(architecture, dict) or not isinstance(architecture.get("type"), str):
        raise ModelFileError(path, f'"architecture" must be an object with a "type", got {_quote(architecture)}')
    values = document.get("parameters")
    if not isinstance(values, list):
        raise ModelFileError(path, f'"parameters" must be a list of numbers, got {type(values).__name__}')
    numbers = []
    for i, x in enumerate(values):
        if isinstance(x, bool) or not isinstance(x, (int, float)):
            raise ModelFileError(path, f"parameter {i} is {_quote(x)}, not a number")
        try:
            number = float(x)
        except OverflowError:
            number = math.inf
        if not math.isfinite(number):  # e.g. 1e400, which JSON reads as inf
            raise ModelFileError(path, f"parameter {i} is {_quote(x)}, not a finite float")
        numbers.append(number)
    expected = _parameter_count(path, architecture)
    if expected is not None and expected != len(values):
        raise ModelFileError(
            path, f"the architecture {_quote(architecture)} has {expected} parameters but the file lists {len(values)}"
        )
    return architecture, numbers


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a number a model can hold (JSON allows only finite numbers)")


def _parameter_count(path, architecture: dict) -> int | None:
    """How many parameters the architecture has (None for a type this module cannot build)."""
    kind = architecture["type"]
    try:
        if kind == "Neuron":
            return _size(architecture, "nin") + 1
        if kind == "Layer":
            return (_size(architecture, "nin") + 1) * _size(architecture, "nout")
        if kind == "MLP":
            nouts = architecture.get("nouts")
            if not isinstance(nouts, list) or not nouts:
                raise ValueError(f'"nouts" must be a non-empty list of layer sizes, got {_quote(nouts)}')
            sizes = [_size(architecture, "nin")] + [_size({"nouts": n}, "nouts") for n in nouts]
            return sum((sizes[i] + 1) * sizes[i + 1] for i in range(len(nouts)))
    except ValueError as error:
        raise ModelFileError(path, f"bad architecture {_quote(architecture)}: {error}") from None
    return None


def _size(architecture: dict, key: str) -> int:
    n = architecture.get(key)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"{key!r} must be a whole number >= 1, got {_quote(n)}")
    return n


def _error_text(error: BaseException, architecture: dict) -> str:
    """``str(error)`` for an error the nn module raised about ``architecture``, with long strings
    from the file in it cut short (it may quote them whole)."""
    text = str(error)
    for value in architecture.values():
        if isinstance(value, str) and len(value) > QUOTE_LIMIT:
            text = text.replace(value, _clip(value))
    return _clip(text, 4 * QUOTE_LIMIT)


def build(architecture: dict, path="<architecture>") -> Module:
    """A new model with the given architecture (its parameters freshly initialized)."""
    kind = architecture.get("type")
    try:
        if kind == "Neuron":
            return Neuron(architecture["nin"], architecture.get("nonlin"))
        if kind == "Layer":
            return Layer(architecture["nin"], architecture["nout"], architecture.get("nonlin"))
        if kind == "MLP":
            nonlin = architecture.get("nonlin")
            return MLP(architecture["nin"], architecture["nouts"], nonlin, architecture.get("out_nonlin", nonlin))
    except (KeyError, TypeError, ValueError, LookupError) as error:
        raise ModelFileError(
            path, f"cannot build the architecture {_quote(architecture)}: {_error_text(error, architecture)}"
        ) from None
    except RecursionError:
        raise ModelFileError(path, _TOO_DEEP) from None
    raise ModelFileError(
        path,
        f"cannot build a model of type {_quote(kind)}; known types: Neuron, Layer, MLP "
        f"(to fill a model of your own class, build it and use load_into)",
    )


def load(path) -> Module:
    """A new model built from the architecture in ``path``, holding the saved parameters."""
    try:
        architecture, values = read(path)
        model = build(architecture, path)
    except RecursionError:  # a value nested so deeply that checking it overflowed the stack
        raise ModelFileError(path, _TOO_DEEP) from None
    _assign(model, values)
    return model


def load_into(model: Module, path) -> Module:
    """Put the parameters saved in ``path`` into ``model``, whose architecture must match."""
    try:
        architecture, values = read(path)
        expected = model.architecture()
        if architecture != expected:
            raise ModelFileError(
                path, f"the file holds {_describe(architecture)} but the model is {_describe(expected)}"
            )
    except RecursionError:
        raise ModelFileError(path, _TOO_DEEP) from None
    if len(values) != len(model.parameters()):
        raise ModelFileError(
            path, f"the file lists {len(values)} parameters but the model has {len(model.parameters())}"
        )
    _assign(model, values)
    return model


def _assign(model: Module, values: list[float]) -> None:
    for p, x in zip(model.parameters(), values):
        p.data = x
        p.grad = 0.0


def _describe(architecture: dict) -> str:
    details = ", ".join(f"{_clip(str(k), 60)}={_quote(v)}" for k, v in architecture.items() if k != "type")
    return f"{_clip(str(architecture.get('type')))}({details})"
