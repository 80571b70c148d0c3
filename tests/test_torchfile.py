"""torchfile.py: torch.save files read without torch, exactly (against torch itself), and
safely: malicious pickles refused with nothing run, crafted shapes and sizes refused before
anything large is allocated, every malformed file one TorchFileError naming the file."""
import collections
import os
import pickle
import sys
import zipfile

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import torchfile  # noqa: E402

@pytest.mark.parametrize("zip_format", [True, False])
def test_reader_round_trips_views_offsets_dtypes_exactly(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    base = torch.randn(6, 5)
    state = collections.OrderedDict(
        transposed=base.t(), row_slice=base[2:4], column=base[:, 3], strided=torch.arange(20)[3::4],
        half=torch.randn(3).half(), parameter=torch.nn.Parameter(torch.randn(2, 2)), scalar=torch.tensor(7),
        nested={"inner": torch.randn(4)[1:]})
    path = tmp_path / "state.pth"
    torch.save(state, path, _use_new_zipfile_serialization=zip_format)
    got = torchfile.read_torch_file(path)
    expected = {name: value for name, value in state.items() if name != "nested"}
    expected["nested.inner"] = state["nested"]["inner"]  # nested dicts come back with joined names
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        value = value.detach().numpy()
        assert got[name].dtype == value.dtype and got[name].flags.c_contiguous
        np.testing.assert_array_equal(got[name], value)


class RunsCode:
    """Unpickling this runs `call(argument)`: the classic malicious-pickle payload."""

    def __init__(self, call, argument):
        self.call, self.argument = call, argument

    def __reduce__(self):
        return self.call, (self.argument,)


def malicious_payloads(marker):
    return {"posix.system": RunsCode(os.system, f"touch {marker}"),
            "builtins.eval": RunsCode(eval, f"open({str(marker)!r}, 'w').close()")}


@pytest.mark.parametrize("refused_global", ["posix.system", "builtins.eval"])
@pytest.mark.parametrize("zip_format", [True, False])
def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path, refused_global, zip_format):
    # the payload is live: plain pickle runs it and creates the marker file
    live_marker = tmp_path / "ran_with_plain_pickle"
    pickle.loads(pickle.dumps(malicious_payloads(live_marker)[refused_global]))
    assert live_marker.exists()
    marker = tmp_path / "ran"
    payload = pickle.dumps({"weight": malicious_payloads(marker)[refused_global]})
    path = tmp_path / "weights.pth"
    if zip_format:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("archive/data.pkl", payload)
    else:  # the legacy format: magic number, version, system info, then the object
        path.write_bytes(torchfile.LEGACY_HEADER + pickle.dumps(1001, protocol=2)
                         + pickle.dumps({"little_endian": True}, protocol=2) + payload)
    with pytest.raises(ValueError, match=f"refused to unpickle the global {refused_global}"):
        torchfile.read_torch_file(path)
    assert not marker.exists()


def test_tensor_outside_its_storage_is_refused(tmp_path):
    path = tmp_path / "lying.pth"  # 4 floats on disk, read as 10
    crafted_zip(path, torch_pickle({"weight": (4, (10,), (1,))}), {"0": np.arange(4, dtype=np.float32).tobytes()})
    with pytest.raises(torchfile.TorchFileError, match="outside its storage"):
        torchfile.read_torch_file(path)


@pytest.mark.parametrize("zip_format", [True, False])
def test_truncated_file_is_corrupt(tmp_path, zip_format):
    torch = pytest.importorskip("torch")
    path = tmp_path / "state.pth"
    torch.save({"weight": torch.randn(1000)}, path, _use_new_zipfile_serialization=zip_format)
    path.write_bytes(path.read_bytes()[:-1000])  # an interrupted copy
    with pytest.raises(ValueError, match="corrupt"):
        torchfile.read_torch_file(path)




def crafted_zip(path, pickled, storages):
    """A zip-format weight file holding `pickled` as data.pkl and raw storages {key: bytes}."""
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", pickled)
        for key, raw in storages.items():
            archive.writestr(f"archive/data/{key}", raw)


# What torch.save pickles for a state dict, written opcode by opcode so that a test can state
# any size, shape and strides: {name: _rebuild_tensor_v2(persistent storage id, offset, shape,
# strides, requires_grad, hooks)}, every tensor a view of the float32 storage "0".

def op_str(text):
    raw = text.encode()
    return b"X" + len(raw).to_bytes(4, "little") + raw  # BINUNICODE


def op_int(n):
    return b"I%d\n" % n  # INT: any size, in decimal


def op_tuple(items):
    return b"(" + b"".join(items) + b"t"  # MARK items TUPLE


def op_global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"  # GLOBAL


def torch_pickle(tensors):
    """tensors: {name: (storage numel, shape, strides)} -> the pickle of a state dict."""
    out = b"}"  # EMPTY_DICT
    for name, (numel, shape, strides) in tensors.items():
        storage_id = op_tuple([op_str("storage"), op_global("torch", "FloatStorage"), op_str("0"),
                               op_str("cpu"), op_int(numel)]) + b"Q"  # BINPERSID
        arguments = op_tuple([storage_id, op_int(0), op_tuple(map(op_int, shape)), op_tuple(map(op_int, strides)),
                              b"\x89", op_global("collections", "OrderedDict") + b")R"])  # NEWFALSE, OrderedDict()
        out += op_str(name) + op_global("torch._utils", "_rebuild_tensor_v2") + arguments + b"Rs"  # REDUCE, SETITEM
    return out + b"."


def test_crafted_files_round_trip_when_honest(tmp_path):
    """The crafting helpers write files the reader accepts when the sizes are honest, so the
    refusals below are about the sizes, not the crafting."""
    path = tmp_path / "honest.pth"
    crafted_zip(path, torch_pickle({"w": (6, (2, 3), (3, 1))}),
                {"0": np.arange(6, dtype=np.float32).tobytes()})
    np.testing.assert_array_equal(torchfile.read_torch_file(path)["w"], np.arange(6).reshape(2, 3))


def test_zero_strides_with_a_huge_shape_are_refused_before_allocating(tmp_path):
    """4 floats on disk, viewed as a (10^6, 10^6) tensor with zero strides: it passes a bounds
    check, and materialized in full would need 4 TB."""
    path = tmp_path / "broadcast.pth"
    crafted_zip(path, torch_pickle({"w": (4, (10 ** 6, 10 ** 6), (0, 0))}),
                {"0": np.zeros(4, np.float32).tobytes()})
    with pytest.raises(torchfile.TorchFileError, match="repeats it: corrupt or malicious") as error:
        torchfile.read_torch_file(path)
    assert str(path) in str(error.value) and "\n" not in str(error.value)


def test_many_tensors_sharing_one_storage_hit_the_budget(tmp_path):
    """Each tensor is an honest view of the same 100,000 floats; 1,000 of them would
    materialize 400 MB from a 400 kB file."""
    path = tmp_path / "shared.pth"
    crafted_zip(path, torch_pickle({f"w{i}": (100_000, (100_000,), (1,)) for i in range(1000)}),
                {"0": np.zeros(100_000, np.float32).tobytes()})
    with pytest.raises(torchfile.TorchFileError, match=r"more than 4x the file's"):
        torchfile.read_torch_file(path)


@pytest.mark.parametrize("numel", [10 ** 12, 2 ** 70])
def test_legacy_storage_larger_than_the_file_is_refused_before_allocating(tmp_path, numel):
    path = tmp_path / "legacy.pth"
    path.write_bytes(torchfile.LEGACY_HEADER + pickle.dumps(1001, protocol=2)
                     + pickle.dumps({"little_endian": True}, protocol=2)
                     + torch_pickle({"w": (numel, (4,), (1,))})
                     + pickle.dumps(["0"], protocol=2) + (4).to_bytes(8, "little") + bytes(16))
    with pytest.raises(torchfile.TorchFileError, match=str(path)) as error:
        torchfile.read_torch_file(path)
    assert "\n" not in str(error.value)


def test_deep_nesting_is_a_one_line_error(tmp_path):
    """Nested dicts 100,000 deep (unpickled without recursion, then flattened) end in the
    reader's error, not a RecursionError traceback."""
    pickled = b"}"
    for _ in range(100_000):
        pickled = b"(X\x01\x00\x00\x00a" + pickled + b"d"
    path = tmp_path / "deep.pth"
    crafted_zip(path, pickled + b".", {})
    with pytest.raises(torchfile.TorchFileError, match="corrupt torch weight file .*Recursion"):
        torchfile.read_torch_file(path)


# --- memory bombs: each crafted here, each refused within a memory budget --------------------

def peak_bytes_of(fn):
    """(result or the exception raised, the peak bytes Python allocated while fn ran)."""
    import tracemalloc

    tracemalloc.start()
    try:
        result = fn()
    except Exception as error:  # noqa: BLE001 - the refusal is what the tests look at
        result = error
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return result, peak


def rezip(source, target, replace):
    """Copy a torch zip archive, its members' bytes replaced by replace(name, data) (deflated)."""
    with zipfile.ZipFile(source) as old, zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as new:
        for name in old.namelist():
            new.writestr(name, replace(name, old.read(name)))


def test_one_tensor_under_many_keys_is_paid_for_under_each(tmp_path):
    torch = pytest.importorskip("torch")
    shared = torch.zeros(64 * 1024)  # 256 kB, one object: the pickle memoizes it
    path = tmp_path / "bomb.pth"
    torch.save({f"key{i}": shared for i in range(2000)}, path)  # 500 MB if each key were copied
    error, peak = peak_bytes_of(lambda: torchfile.read_torch_file(path))
    assert isinstance(error, torchfile.TorchFileError) and "more than 4x the file" in str(error)
    assert peak < 8 * os.path.getsize(path)


def test_a_dag_of_dicts_is_refused_before_it_multiplies(tmp_path):
    torch = pytest.importorskip("torch")
    level = {"weight": torch.zeros(4)}
    for _ in range(24):  # each level references the one below twice: 2^24 paths in 24 dicts
        level = {"a": level, "b": level}
    path = tmp_path / "bomb.pth"
    torch.save(level, path)
    error, peak = peak_bytes_of(lambda: torchfile.read_torch_file(path))
    assert isinstance(error, torchfile.TorchFileError) and "a dict referenced twice" in str(error)
    assert peak < 1_000_000


@pytest.mark.parametrize("member, message", [("byteorder", "byteorder entry of more than 16 bytes"),
                                             ("data.pkl", "its pickle inflates to")])
def test_deflated_members_are_checked_before_they_inflate(tmp_path, member, message):
    torch = pytest.importorskip("torch")
    honest = tmp_path / "honest.pth"
    torch.save({"weight": torch.zeros(4)}, honest)
    big = 200 * 1024 * 1024  # 200 MB of zeros deflate to about 200 kB
    if member == "data.pkl":  # a pickle that pushes a 200 MB bytes object (BINBYTES8), then stops
        payload = b"\x80\x04\x8e" + big.to_bytes(8, "little") + bytes(big) + b"."
    else:
        payload = bytes(big)
    path = tmp_path / "bomb.pth"
    rezip(honest, path, lambda name, data: payload if name.endswith("/" + member) else data)
    assert os.path.getsize(path) < 2_000_000
    error, peak = peak_bytes_of(lambda: torchfile.read_torch_file(path))
    assert isinstance(error, torchfile.TorchFileError) and message in str(error)
    assert peak < 10_000_000  # nothing inflated
