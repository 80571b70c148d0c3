"""Hand-written data parallelism with jax.pmap: the only file that knows about devices and hosts.

The recipe, the same on 1 device, n devices and several hosts:
- the training state is replicated: every local device holds a copy, (n_local, ...);
- every host loads only its slice of the global batch (host_slice) and splits it over its
  devices (shard): (n_local, B / n_devices, ...);
- inside the pmapped step, gradients are averaged over all devices of all hosts with
  lax.pmean over the axis named "batch", so every copy takes the same update.

Several hosts: start one process per host with JAX_COORDINATOR_ADDRESS (host:port of
process 0), JAX_NUM_PROCESSES and JAX_PROCESS_ID set, and call init_distributed() first.
Fake CPU devices for tests: XLA_FLAGS=--xla_force_host_platform_device_count=N.

(jax.pmap now runs on shard_map and is in maintenance mode; its interface is the clearest
statement of the recipe above, which is why we teach with it.)
"""
import os

import jax
import numpy as np

AXIS = "batch"  # the name lax.pmean and friends use for "all devices"

# On a CPU, XLA's Eigen convolutions are faster than the YNNPACK ones jaxlib 0.10 picks by
# default (bench.py measures both). The flag only touches XLA's CPU backend; XLA reads
# XLA_FLAGS once, when the first computation starts.
CPU_CONVOLUTION_FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"


def use_fast_cpu_convolutions():
    """Add CPU_CONVOLUTION_FLAG to XLA_FLAGS unless the user set that option. Call it before the
    first computation: afterwards XLA has read its flags and this changes nothing."""
    flags = os.environ.get("XLA_FLAGS", "")
    if "ynn_fusion_type" not in flags:
        os.environ["XLA_FLAGS"] = f"{flags} {CPU_CONVOLUTION_FLAG}".strip()


class AcceleratorError(RuntimeError):
    """An accelerator was installed for jax, and jax does not see it."""


ACCELERATOR_PACKAGES = ("jax-cuda12-plugin", "jax-cuda13-plugin", "libtpu", "jax-rocm-plugin")


def check_accelerator():
    """Refuse to run on the CPU when a jax accelerator plugin is installed (a broken CUDA
    install, a TPU host without its devices): training would silently take days on the CPU.
    JAX_PLATFORMS=cpu says the CPU is meant."""
    from importlib import metadata

    names = {(d.metadata["Name"] or "").lower().replace("_", "-") for d in metadata.distributions()}
    installed = sorted(names & set(ACCELERATOR_PACKAGES))
    if installed and jax.default_backend() == "cpu" and os.environ.get("JAX_PLATFORMS", "") != "cpu":
        raise AcceleratorError(f"{', '.join(installed)} is installed but jax sees only the CPU: fix the "
                               f"driver install (python -c 'import jax; print(jax.devices())' shows what jax "
                               f"sees), or set JAX_PLATFORMS=cpu to run on the CPU")


def init_distributed():
    """Several hosts: join the job described by JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
    JAX_PROCESS_ID; on one host (those unset) only the CPU convolution flag is set. Then check
    that an installed accelerator is the backend."""
    use_fast_cpu_convolutions()
    if "JAX_NUM_PROCESSES" in os.environ:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # CPU hosts (tests)
        jax.distributed.initialize(os.environ["JAX_COORDINATOR_ADDRESS"],
                                   int(os.environ["JAX_NUM_PROCESSES"]), int(os.environ["JAX_PROCESS_ID"]))
        from jax.experimental import multihost_utils

        # set up the hosts' collective channel now, while all of them are at this line: made
        # lazily at the first computation instead, a host that is slower to get there (data,
        # compilation) can make the others time out
        multihost_utils.sync_global_devices("hosts up")
    check_accelerator()


def data_parallel(fn):
    """fn run on every local device at once. Inputs carry a leading device axis (n_local, ...):
    the state replicated, batches sharded; collectives inside fn use axis_name=AXIS."""
    return jax.pmap(fn, axis_name=AXIS)


def replicate(tree):
    """A copy of tree on every local device, (n_local, ...), laid out as pmap lays out its
    outputs, so that the first step does not compile a second time for another layout."""
    n = jax.local_device_count()
    stacked = jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), tree)
    return data_parallel(lambda x: x)(stacked)


def unreplicate(tree):
    """The copy on this host's first device, as numpy."""
    return jax.tree.map(lambda x: np.asarray(x.addressable_data(0)).reshape(x.shape[1:]), tree)


def host_slice(n_global_items):
    """The range of a global batch that this host loads: each host loads only its part."""
    per_host = n_global_items // jax.process_count()
    return slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)


def shard(x):
    """This host's part of a global batch (B / n_hosts, ...) -> (n_local, B / n_devices, ...)."""
    n = jax.local_device_count()
    return x.reshape(n, x.shape[0] // n, *x.shape[1:])


def gather(x):
    """Per-device outputs (n_local, b, ...) of every host -> the global (n_devices * b, ...)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        x = multihost_utils.process_allgather(x, tiled=True)
    x = np.asarray(x)
    return x.reshape(-1, *x.shape[2:])


def run_batched(fn, params, *arrays, batch):
    """A data_parallel fn(params, *chunks) over all rows of `arrays`, in global chunks of
    `batch` rows (rounded up to split over every device, the last chunk padded with copies
    of its first row); each host feeds its slice. params are replicated (replicate(): they
    stay on the devices between calls). Returns the rows as numpy."""
    n_dev = jax.device_count()
    batch = -(-min(batch, len(arrays[0])) // n_dev) * n_dev
    mine, out = host_slice(batch), []
    for start in range(0, len(arrays[0]), batch):
        chunk = [a[start:start + batch] for a in arrays]
        real = len(chunk[0])
        chunk = [np.concatenate([c, np.repeat(c[:1], batch - real, axis=0)]) for c in chunk]
        out.append(gather(fn(params, *[shard(c[mine]) for c in chunk]))[:real])
    return np.concatenate(out)


def over_devices(batch):
    """map_batches for features.feature_extractor: the network on every device, in global
    batches of `batch` images."""
    return lambda apply, params, images: run_batched(data_parallel(apply), replicate(params), images, batch=batch)
