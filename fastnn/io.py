"""Model files: safetensors (never pickle), tensors under torch.nn-style keys, the
architecture and format version as JSON metadata, written atomically.

A file written by `save` can be read by `safetensors.numpy.load_file` (or torch's
`safetensors.torch.load_file`) and its tensors loaded into the equivalent
torch.nn.Sequential by key."""
import json
import os
import tempfile

import numpy as np

from . import __version__, layers as _layers, rng
from .graph import Model
from .module import Module
from .sequential import Sequential

FORMAT = "fastnn"
FORMAT_VERSION = "1"

# Classes a saved architecture may name.
_CLASSES = {name: getattr(_layers, name) for name in _layers.__all__
            if isinstance(getattr(_layers, name), type)}
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


def atomic_write(path, data):
    """Write bytes to path so that it always holds either its old content or the new
    content in full: a temporary file in the same directory, fsync, rename, fsync of
    the directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".fastnn-", suffix=".tmp", dir=directory)
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
    return save({k: np.require(v, requirements="C") for k, v in tensors.items()},
                metadata={k: v if isinstance(v, str) else json.dumps(v)
                          for k, v in metadata.items()})


def decode(path):
    """(tensors, metadata) of a safetensors file; ValueError if it is not one."""
    from safetensors import SafetensorError
    from safetensors.numpy import load

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    with open(path, "rb") as f:
        data = f.read()
    try:
        tensors = load(data)
        header_len = int.from_bytes(data[:8], "little")
        header = json.loads(data[8 : 8 + header_len])
    except (SafetensorError, ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: not a readable safetensors model file (truncated, corrupt "
                         f"or another format: {e})") from None
    return tensors, header.get("__metadata__", {}) or {}


def save(model, path, metadata=None):
    """Write `model` to a safetensors file at path (atomically): its state_dict under
    torch-style keys, plus metadata {'format': 'fastnn', 'format_version', 'version',
    'dtype', 'architecture'} and, if given, `metadata` (a JSON-serialisable dict of
    your own, e.g. class names; read back with read_metadata); the class names a
    Trainer encoded (model.classes_) are recorded as {'task': 'classification',
    'classes': [...]}, which `fastnn predict` answers in. A model with
    user-defined modules is saved without an architecture (load it into an instance
    with load(path, model=...))."""
    if not isinstance(model, Module):
        raise TypeError(f"save: expected a fastnn Module, got {type(model).__name__}")
    try:
        architecture = layer_spec(model)
    except NotImplementedError:
        architecture = None
    user = dict(metadata or {})
    classes = getattr(model, "classes_", None)  # set by Trainer.fit for class names
    if classes is not None and "classes" not in user:
        user.update(task="classification", classes=[str(c) for c in classes])
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "version": __version__,
            "dtype": str(model.dtype or np.dtype(np.float32)), "architecture": architecture,
            "user": user}
    atomic_write(path, encode(model.state_dict(), meta))


def read_metadata(path):
    """The `metadata` dict given to save (empty if none)."""
    _, meta = decode(path)
    return json.loads(meta.get("user", "{}"))


def load(path, model=None):
    """Read a model written by save. Without `model`, the architecture stored in the
    file is rebuilt; with it, the file's tensors are loaded into `model` (keys and
    shapes must match - this also reads safetensors state dicts written by torch).
    A truncated, corrupt or foreign file raises ValueError; nothing is unpickled."""
    tensors, meta = decode(path)
    if model is None:
        if meta.get("format") != FORMAT:
            raise ValueError(f"{path}: not a fastnn model file (no fastnn metadata); pass "
                             "model= to load its tensors into a model you built")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{path}: model format version {meta.get('format_version')!r} "
                             f"is not supported (this fastnn reads {FORMAT_VERSION!r})")
        try:
            architecture = json.loads(meta.get("architecture", "null"))
        except ValueError as e:
            raise ValueError(f"{path}: the model architecture in the file is not valid "
                             f"JSON ({e})") from None
        if architecture is None:
            raise ValueError(f"{path}: the file has no architecture (the model contained "
                             "user-defined modules); pass model= to load its weights")
        # Building draws initial weights; keep fastnn's random state as it was.
        state = rng.get_state()
        try:
            model = layer_from_spec(architecture, np.dtype(meta.get("dtype", "float32")))
        except (TypeError, ValueError, KeyError, AttributeError, NotImplementedError) as e:
            # A damaged or hand-made architecture: say which file, never a bare TypeError.
            raise ValueError(f"{path}: the model architecture in the file is invalid "
                             f"({type(e).__name__}: {e})") from None
        finally:
            rng.set_state(state)
    try:
        model.load_state_dict(tensors)
    except (KeyError, ValueError) as e:
        raise ValueError(f"{path}: tensors do not fit the model: {e}") from None
    return model
