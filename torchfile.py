"""Read torch.save'd weight files (state dicts) without torch, and without running anything
from the file.

A .pth file is a pickle. Unpickling runs whatever the file names (os.system included), so
ours resolves only the few globals a state dict needs (OrderedDict, the tensor and parameter
rebuilders, the storage types), each to a function of our own, and refuses every other. A
tensor comes back as a numpy view of its storage, copied once at the end.

A crafted file must not make us allocate much more memory than the file itself holds:
- a storage is at most as large as the file (the data must be in it);
- a tensor holds at most as many elements as its storage (no zero-stride broadcasts);
- all tensors together hold at most MAX_EXPANSION times the file's bytes (tensors may share
  a storage, e.g. tied weights, so a little more than 1x is legitimate), counted again when
  they are copied out, so one tensor named under many keys is counted under each;
- a state dict is a tree: a dict reached twice (a pickle can reference one object many times,
  and nested references double at every level) is refused;
- a zip member is inflated only after its declared size is checked: the pickle itself at most
  MAX_EXPANSION times the file, the byte-order marker a few bytes.
Every malformed file, crafted or damaged, ends in one TorchFileError (a ValueError) whose
one-line message names the file.

    state = read_torch_file("pt_inception-2015-12-05-6726825d.pth")   # {name: np.ndarray}

Both of torch.save's formats are read: the zip archive (torch >= 1.6) and the legacy stream
of pickles that older files (such as the FID Inception weights) use.
"""
import collections
import os
import pickle
import zipfile

import numpy as np

MAX_EXPANSION = 4  # all tensors together: at most this many times the file's bytes
TORCH_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64,
                        "HalfStorage": np.float16, "BFloat16Storage": "bfloat16",
                        "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                        "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}
LEGACY_HEADER = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2)  # how pre-1.6 torch.save files begin


class TorchFileError(ValueError):
    """A weight file we will not read: damaged, not a state dict, or crafted."""


def storage_dtype(name):
    if name == "BFloat16Storage":  # numpy has no bfloat16; ml_dtypes (a jax dependency) does
        import ml_dtypes

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(TORCH_STORAGE_DTYPES[name])


class Budget:
    """Bytes of tensor data a file may still make us materialize."""

    def __init__(self, file_bytes):
        self.file_bytes = file_bytes
        self.left = MAX_EXPANSION * file_bytes

    def check_storage(self, nbytes):
        if not 0 <= nbytes <= self.file_bytes:
            raise TorchFileError(f"a storage of {nbytes} bytes in a file of {self.file_bytes}: corrupt or "
                                 f"malicious file")

    def spend(self, nbytes):
        self.left -= nbytes
        if self.left < 0:
            raise TorchFileError(f"its tensors hold more than {MAX_EXPANSION}x the file's "
                                 f"{self.file_bytes} bytes: corrupt or malicious file")


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals a state dict needs, to our own functions; storages come from
    load_storage, tensors are checked against their storage and the budget."""

    def __init__(self, file, budget, load_storage=None):
        super().__init__(file)
        self.budget, self.load_storage = budget, load_storage

    def find_class(self, module, name):
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self.rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return lambda data, *unused: data  # nn.Parameter -> its data
        if module == "torch" and name in TORCH_STORAGE_DTYPES:
            return storage_dtype(name)
        raise TorchFileError(f"refused to unpickle the global {module}.{name}: a weight file needs only "
                             f"dicts, tensors and storages (the file may be malicious)")

    def persistent_load(self, storage_id):
        if self.load_storage is None or storage_id[0] != "storage":
            raise TorchFileError(f"unexpected persistent id {storage_id[0]!r} in a weight file")
        return self.load_storage(*storage_id[1:])

    def rebuild_tensor(self, storage, offset, shape, strides, *unused):
        """A tensor is a strided view of its 1-D storage (torch._utils._rebuild_tensor_v2)."""
        shape, strides = tuple(int(n) for n in shape), tuple(int(s) for s in strides)
        if not isinstance(storage, np.ndarray) or len(shape) != len(strides) or min(shape, default=1) < 0:
            raise TorchFileError(f"a malformed tensor {shape} with strides {strides}")
        numel = int(np.prod(shape, dtype=object))  # exact: no int64 overflow on crafted shapes
        if numel == 0:
            return np.zeros(shape, storage.dtype)
        last = offset + sum((n - 1) * s for n, s in zip(shape, strides))
        if offset < 0 or min(strides, default=0) < 0 or last >= storage.size or numel > storage.size:
            raise TorchFileError(f"a tensor {shape} with strides {strides} lies outside its storage of "
                                 f"{storage.size} elements or repeats it: corrupt or malicious file")
        self.budget.spend(numel * storage.itemsize)
        # a read-only view: as_strided does no bounds checks, hence the checks above
        return np.lib.stride_tricks.as_strided(storage[offset:], shape, [s * storage.itemsize for s in strides],
                                               writeable=False)


def read_zip_format(path, budget):
    """torch.save since 1.6: a zip of <root>/data.pkl and one raw file per storage, <root>/data/<key>."""
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if not pickles:
            raise TorchFileError("a zip archive without data.pkl, not a torch weight file")
        root = pickles[0][:-len("data.pkl")]
        if archive.getinfo(pickles[0]).file_size > MAX_EXPANSION * budget.file_bytes:
            raise TorchFileError(f"its pickle inflates to {archive.getinfo(pickles[0]).file_size} bytes from a file "
                                 f"of {budget.file_bytes}: corrupt or malicious file")
        byteorder = "little"
        if root + "byteorder" in names:
            if archive.getinfo(root + "byteorder").file_size > 16:  # 'little' or 'big'
                raise TorchFileError("a byteorder entry of more than 16 bytes: corrupt or malicious file")
            byteorder = archive.read(root + "byteorder").decode()
        storages = {}

        def load_storage(dtype, key, location, numel, *unused):
            if key not in storages:  # tensors can share a storage
                member = f"{root}data/{key}"
                budget.check_storage(archive.getinfo(member).file_size)  # before inflating it
                raw = archive.read(member)
                storages[key] = np.frombuffer(raw, dtype.newbyteorder("<" if byteorder == "little" else ">"))
            return storages[key]

        return RestrictedUnpickler(archive.open(pickles[0]), budget, load_storage).load()


def read_legacy_format(path, budget):
    """torch.save before 1.6: pickles of magic, version, system info, the object, storage keys,
    then each storage's raw data preceded by its element count (int64). Storages are filled
    after the object is unpickled, so tensors stay views of them until the final copy."""
    storages = {}

    def load_storage(dtype, key, location, numel, view=None):
        if key not in storages:  # tensors can share a storage
            budget.check_storage(int(numel) * dtype.itemsize)  # before allocating what it declares
            storages[key] = np.empty(int(numel), dtype)
        if view is not None:  # (view key, offset, size): a slice of the root storage
            return storages[key][view[1]:view[1] + view[2]]
        return storages[key]

    with open(path, "rb") as file:
        if file.read(len(LEGACY_HEADER)) != LEGACY_HEADER:
            raise TorchFileError("not a torch weight file (neither a zip archive nor a legacy torch.save "
                                 "file): corrupt or incomplete")
        RestrictedUnpickler(file, budget).load()  # the format's protocol version
        system_info = RestrictedUnpickler(file, budget).load()
        if not isinstance(system_info, dict) or not system_info.get("little_endian", True):
            raise TorchFileError("a big-endian or malformed legacy torch file, not supported")
        state = RestrictedUnpickler(file, budget, load_storage).load()
        for key in RestrictedUnpickler(file, budget).load():
            storage = storages[key]
            count = int.from_bytes(file.read(8), "little")
            if count != storage.size or file.readinto(storage.view(np.uint8)) != storage.nbytes:
                raise TorchFileError(f"storage {key} is truncated or the wrong size: corrupt file")
    return state


def flat_arrays(tree, budget, prefix="", seen=None):
    """{name: array}: nested dicts (a checkpoint around a state dict) joined with '.', other
    entries (step counts, optimizer settings) dropped. Each copy is paid from the budget, and
    a dict met twice is refused (a tree has none)."""
    seen = set() if seen is None else seen
    if id(tree) in seen:
        raise TorchFileError("a dict referenced twice: not a tree of state dicts (corrupt or malicious file)")
    seen.add(id(tree))
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_arrays(value, budget, f"{prefix}{key}.", seen))
        elif isinstance(value, np.ndarray):
            budget.spend(value.nbytes)
            # a C-contiguous, native-byte-order copy, no longer a view of a storage
            flat[prefix + str(key)] = np.array(value, value.dtype.newbyteorder("="), order="C")
    return flat


def read_torch_file(path):
    """{name: numpy array} of a torch.save'd state dict (zip or legacy format), without torch."""
    budget = Budget(os.path.getsize(path))
    try:
        state = read_zip_format(path, budget) if zipfile.is_zipfile(path) else read_legacy_format(path, budget)
        if not isinstance(state, dict):
            raise TorchFileError(f"holds a {type(state).__name__}, not a state dict")
        return flat_arrays(state, budget)
    except TorchFileError as error:
        raise TorchFileError(f"{path}: {error}") from None
    except Exception as error:  # noqa: BLE001 - any failure to parse an untrusted file is a corrupt file
        # (a damaged file, or a crafted one: odd arguments, absurd shapes, deep nesting, ...)
        message = str(error).splitlines()[0][:200] if str(error) else ""
        raise TorchFileError(f"{path}: corrupt torch weight file ({type(error).__name__}: {message})") from None
