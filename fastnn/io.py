"""Model files: safetensors (never pickle), tensors under torch.nn-style keys, the
architecture and format version as JSON metadata, written atomically.

A file written by `save` can be read by `safetensors.numpy.load_file` (or torch's
`safetensors.torch.load_file`) and its tensors loaded into the equivalent
torch.nn.Sequential by key."""

import json
import math
import os
import tempfile

import numpy as np

from . import __version__, layers as _layers
from .graph import Model
from .module import Module
from .sequential import Sequential
from .validation import float_dtype

FORMAT = "fastnn"
FORMAT_VERSION = "1"

# Classes a saved architecture may name.
_CLASSES = {
    name: getattr(_layers, name)
    for name in _layers.__all__
    if isinstance(getattr(_layers, name), type)
}
_CLASSES["Sequential"] = Sequential
_CLASSES["Model"] = Model


def layer_spec(module):
    """{'type': class name, 'config': constructor arguments, 'name': its name if set}
    of a module; Modules inside the configuration (a container's layers, a wrapped
    layer) are described recursively. Weight-normalised layers also record their
    `weight_norm` dim."""
    from .layers.normalization import _WeightNormed

    cls = type(module)
    spec = {}
    if isinstance(module, _WeightNormed):
        cls = cls.__mro__[2]
        spec["weight_norm"] = module._wn_dim
    if _CLASSES.get(cls.__name__) is not cls:
        raise NotImplementedError(f"cannot describe {cls.__name__}: not a built-in layer")
    spec = {"type": cls.__name__, "config": _describe(module.get_config()), **spec}
    if module.name is not None:
        spec["name"] = module.name
    return spec


def _describe(value):
    if isinstance(value, Module):
        return layer_spec(value)
    if isinstance(value, dict):
        return {k: _describe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_describe(v) for v in value]
    return value


def _is_spec(value):
    return isinstance(value, dict) and set(value) >= {"type", "config"}


def _rebuild(value, dtype):
    if _is_spec(value):
        return layer_from_spec(value, dtype)
    if isinstance(value, dict):
        return {k: _rebuild(v, dtype) for k, v in value.items()}
    if isinstance(value, list):
        return [_rebuild(v, dtype) for v in value]
    return value


def layer_from_spec(spec, dtype=np.float32):
    """Rebuild a module from layer_spec's description (parameters freshly initialised)."""
    from .layers.normalization import weight_norm

    name = spec.get("type")
    if name not in _CLASSES:
        raise ValueError(f"unknown layer type {name!r} in model architecture")
    cls = _CLASSES[name]
    config = _rebuild(spec["config"], dtype)
    from_config = getattr(cls, "from_config", None)
    if from_config is not None:
        module = from_config(config, name=spec.get("name"))
    else:
        module = cls(**config, name=spec.get("name"))
    if "weight_norm" in spec:
        weight_norm(module, dim=spec["weight_norm"])
    return module.astype(dtype) if module.parameters() or module._buffers else module


def _umask():
    try:
        with open("/proc/self/status") as f:  # Linux: read it without changing it
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _file_mode(path):
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return 0o666 & ~_umask()


_TMP_PREFIX = ".fastnn-"


def _remove_stale_temporaries(directory):
    """Delete temporaries of earlier writes whose process is gone (killed while
    writing: SIGKILL leaves no chance to clean up). The writer's PID is in the name."""
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if not (name.startswith(_TMP_PREFIX) and name.endswith(".tmp")):
            continue
        pid = name[len(_TMP_PREFIX) :].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        try:
            os.unlink(os.path.join(directory, name))
        except OSError:
            pass


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def atomic_write(path, data):
    """Write bytes to path so that it always holds either its old content or the new
    content in full: a temporary file in the same directory, fsync, rename, fsync of
    the directory. The temporary is removed when the write fails or is interrupted,
    and one left by a killed process is removed by the next write in its directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    _remove_stale_temporaries(directory)
    fd, tmp = tempfile.mkstemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", suffix=".tmp", dir=directory)
    try:
        # mkstemp creates the file 0600; give it the permissions of the file it replaces,
        # or those of an ordinary new file (0666 minus the umask), as open() would.
        os.chmod(tmp, _file_mode(path))
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms without directory handles
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def encode(tensors, metadata):
    """safetensors bytes of a dict of arrays with string metadata."""
    from safetensors.numpy import save

    # np.require keeps 0-d arrays 0-d (ascontiguousarray would make them 1-d).
    return save(
        {k: np.require(v, requirements="C") for k, v in tensors.items()},
        metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()},
    )


# Tensor types a fastnn file may hold: float parameters and buffers, int64 counters
# (BatchNorm's num_batches_tracked, an optimizer's step).
_TENSOR_DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}
# A header larger than this is not a model file's (fastnn's are a few kB).
MAX_HEADER_BYTES = 100 << 20
# Deepest nesting of containers an architecture may declare (rebuilding recurses).
MAX_DEPTH = 64


def _damaged(path, why):
    return ValueError(f"{path}: not a readable safetensors model file ({why})")


def read_header(path):
    """(tensor table {name: (dtype, shape, (begin, end))}, metadata) of a safetensors
    file, checked before any tensor is read: the header's size, every tensor's type
    (float32, float64 or int64), shape and byte range against the file's size.
    ValueError naming the file for anything else."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise _damaged(path, f"{size} bytes: too short for a header")
        n = int.from_bytes(head, "little")
        if n > min(size - 8, MAX_HEADER_BYTES):
            raise _damaged(path, f"declares a {n}-byte header in a {size}-byte file")
        raw = f.read(n)
    try:
        header = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise _damaged(path, f"header is not JSON: {type(e).__name__}") from None
    if not isinstance(header, dict):
        raise _damaged(path, "header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _damaged(path, "metadata is not a table of strings")
    table, data_size, ends = {}, size - 8 - n, []
    for name, entry in header.items():
        try:
            code, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
        except (TypeError, KeyError, ValueError):
            raise _damaged(path, f"tensor {name!r} has no dtype, shape and data_offsets") from None
        if code not in _TENSOR_DTYPES:
            raise ValueError(
                f"{path}: tensor {name!r} has type {code}; fastnn model files "
                "hold float32/float64 tensors (and int64 counters)"
            )
        dims = shape if isinstance(shape, list) else [None]
        if not all(type(d) is int and d >= 0 for d in dims + [begin, end]):
            raise _damaged(path, f"tensor {name!r}: invalid shape {shape} or offsets")
        nbytes = math.prod(dims) * _TENSOR_DTYPES[code].itemsize
        if end - begin != nbytes or end > data_size or begin > end:
            raise _damaged(
                path,
                f"tensor {name!r} of shape {tuple(dims)} ({nbytes} bytes) "
                f"does not fit bytes {begin}..{end} of {data_size}",
            )
        table[name] = (_TENSOR_DTYPES[code], tuple(dims), (begin, end))
        ends.append((begin, end))
    ends.sort()
    covered = [0] + [e for _, e in ends]
    if [b for b, _ in ends] != covered[:-1] or covered[-1] != data_size:
        raise _damaged(
            path,
            f"the tensors do not tile the {data_size} data bytes exactly "
            "(overlapping, gaps or extra bytes)",
        )
    return table, meta


def decode(path):
    """(tensors, metadata) of a safetensors file; ValueError if it is not one. The
    header is checked (read_header) before any tensor is read."""
    path = os.fspath(path)
    table, meta = read_header(path)
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        base = 8 + n
        tensors = {}
        for name, (dt, shape, (begin, end)) in table.items():
            f.seek(base + begin)
            buf = f.read(end - begin)
            if len(buf) != end - begin:
                raise _damaged(path, f"truncated in tensor {name!r}")
            tensors[name] = np.frombuffer(buf, dt).reshape(shape).astype(dt.newbyteorder("="))
    return tensors, meta


def check_tensors(tensors, path):
    """ValueError naming the first tensor holding NaN or infinity: a model or
    checkpoint file with those is damaged (or saved from a diverged run) and would
    predict NaN."""
    for name, t in tensors.items():
        if t.dtype.kind == "f" and not np.isfinite(t).all():
            bad = int((~np.isfinite(t)).sum())
            raise ValueError(
                f"{path}: tensor {name!r} holds {bad} NaN or infinite "
                f"value{'s' if bad > 1 else ''}; the file is damaged or was "
                "saved from a diverged run"
            )


def _depth(spec, limit):
    """How deeply layer descriptions nest in an architecture (1 for a single layer),
    counted without recursion and without looking further than `limit` levels."""
    deepest, stack = 0, [(spec, 0)]
    while stack:
        value, level = stack.pop()
        if _is_spec(value):
            level += 1
            deepest = max(deepest, level)
            if level > limit:
                return level
        if isinstance(value, dict):
            stack.extend((v, level) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, level) for v in value)
    return deepest


def class_metadata(classes):
    """The metadata recording a classifier's labels: {'task': 'classification',
    'classes': their text (what `fastnn predict` prints), 'classes_dtype': the numpy
    type to restore them in}."""
    classes = np.asarray(classes)
    return {
        "task": "classification",
        "classes": [str(c) for c in classes.tolist()],
        "classes_dtype": classes.dtype.str if classes.dtype.kind in "biufU" else "str",
    }


def _parse_class(text, kind):
    if kind == "b":
        if text not in ("True", "False"):
            raise ValueError(f"{text!r} is not a boolean")
        return text == "True"
    return int(text) if kind in "iu" else float(text) if kind == "f" else text


def classes_from_metadata(user, path):
    """The labels `class_metadata` recorded, as a numpy array of their type (strings
    when no type was recorded, as in older files), or None."""
    classes = user.get("classes")
    if user.get("task") != "classification" or not classes:
        return None
    if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
        raise ValueError(f"{path}: the 'classes' metadata is not a list of strings")
    try:
        dtype = np.dtype(user.get("classes_dtype", "str"))
        return np.array([_parse_class(c, dtype.kind) for c in classes], dtype=dtype)
    except (TypeError, ValueError, OverflowError) as e:
        raise ValueError(
            f"{path}: the 'classes' metadata does not read as {user.get('classes_dtype')!r} ({e})"
        ) from None


def save(model, path, metadata=None):
    """Write `model` to a safetensors file at path (atomically): its state_dict under
    torch-style keys, plus metadata {'format': 'fastnn', 'format_version', 'version',
    'dtype', 'architecture'} and, if given, `metadata` (a JSON-serialisable dict of
    your own, e.g. class names; read back with read_metadata); the labels a
    classifier was trained on (model.classes_, set by Trainer.fit for class names and by
    the scikit-learn estimators) are recorded with their type (see class_metadata), so
    that load restores model.classes_ and `fastnn predict` answers in them. A model with
    user-defined modules is saved without an architecture (load it into an instance
    with load(path, model=...))."""
    if not isinstance(model, Module):
        raise TypeError(f"save: expected a fastnn Module, got {type(model).__name__}")
    try:
        architecture = layer_spec(model)
    except NotImplementedError:
        architecture = None
    user = dict(metadata or {})
    classes = getattr(model, "classes_", None)
    if classes is not None and "classes" not in user:
        user.update(class_metadata(classes))
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "version": __version__,
        "dtype": str(model.dtype or np.dtype(np.float32)),
        "architecture": architecture,
        "user": user,
    }
    atomic_write(path, encode(model.state_dict(), meta))


def read_metadata(path):
    """The `metadata` dict given to save (empty if none)."""
    _, meta = read_header(path)
    user = _json_field(meta, "user", {}, path)
    if not isinstance(user, dict):
        raise ValueError(f"{path}: the 'user' metadata in the file is not a JSON object")
    return user


def _json_field(meta, key, default, path):
    try:
        return json.loads(meta[key]) if key in meta else default
    except RecursionError:
        raise ValueError(f"{path}: the {key!r} metadata in the file nests too deeply") from None
    except ValueError as e:
        raise ValueError(
            f"{path}: the {key!r} metadata in the file is not valid JSON ({e})"
        ) from None


def _rebuild_from_file(path, meta, table):
    """The architecture a fastnn file describes, built without drawing initial
    weights and refused - before allocating - if it declares more parameters than the
    file holds or nests deeper than MAX_DEPTH."""
    from . import init, memory

    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path}: not a fastnn model file (no fastnn metadata); pass "
            "model= to load its tensors into a model you built"
        )
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: model format version {meta.get('format_version')!r} "
            f"is not supported (this fastnn reads {FORMAT_VERSION!r})"
        )
    architecture = _json_field(meta, "architecture", None, path)
    if architecture is None:
        raise ValueError(
            f"{path}: the file has no architecture (the model contained "
            "user-defined modules); pass model= to load its weights"
        )
    if not isinstance(architecture, dict) or _depth(architecture, MAX_DEPTH) > MAX_DEPTH:
        raise ValueError(
            f"{path}: the model architecture in the file is invalid (not a "
            f"layer description, or nests deeper than {MAX_DEPTH} levels)"
        )
    held = sum(math.prod(shape) for dt, shape, _ in table.values() if dt.kind == "f")
    # Rebuilding may create parameters that do not end up in the model (weight_norm
    # replaces `weight`): twice what the file holds, plus a little, bounds it.
    budget = 2 * held + 2**20
    try:
        with (
            memory.parameter_budget(
                budget, f"{budget} values allowed by the {held} the file holds"
            ),
            init.skipped(),
        ):
            return layer_from_spec(architecture, float_dtype(meta.get("dtype", "float32")))
    except (
        TypeError,
        ValueError,
        KeyError,
        AttributeError,
        NotImplementedError,
        MemoryError,
        RecursionError,
    ) as e:
        # A damaged or hand-made architecture: say which file, never a bare TypeError.
        raise ValueError(
            f"{path}: the model architecture in the file is invalid ({type(e).__name__}: {e})"
        ) from None


def load(path, model=None):
    """Read a model written by save. Without `model`, the architecture stored in the
    file is rebuilt; with it, the file's tensors are loaded into `model` (keys and
    shapes must match - this also reads safetensors state dicts written by torch).

    Every damaged or crafted file raises one ValueError naming the file: truncated or
    corrupt data, a foreign format, tensors of other types (complex, int where a float
    is expected), NaN or infinite values, an architecture that declares more parameters
    than the file holds (checked before anything is allocated) or nests too deeply.
    Nothing is unpickled. A classifier's labels saved with it come back as
    model.classes_ (a Trainer built on the model then predicts classes in them)."""
    table, meta = read_header(path)
    if model is None:
        model = _rebuild_from_file(path, meta, table)
    tensors, _ = decode(path)
    check_tensors(tensors, path)
    own = dict(model._state_items())
    for key, t in tensors.items():
        if key in own and own[key].dtype.kind != t.dtype.kind:
            raise ValueError(
                f"{path}: tensor {key!r} has type {t.dtype}, the model's is {own[key].dtype}"
            )
    try:
        model.load_state_dict(tensors)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: tensors do not fit the model: {e}") from None
    user = _json_field(meta, "user", {}, path)
    classes = classes_from_metadata(user, path) if isinstance(user, dict) else None
    if classes is not None:
        model.classes_ = classes
    return model
