"""Where a train step's time goes, by kind of operation, in XLA and in the PyTorch twin.

XLA's side: a jax.profiler trace of a few steps holds one event per operation the CPU runtime
executes (a "thunk", named after its HLO instruction); the compiled program's HLO text says
what each one computes. PyTorch's side: torch.profiler's self time of every aten op. Both are
summed into the same few kinds, so that one table shows which kind of work makes the
difference:

  convolution  3x3 convolutions and their gradients (XLA: anything fused with one)
  matmul       dot products: 1x1 convolutions, dense layers, attention
  reduction    sums over the activations: GroupNorm's statistics, softmax, the bias gradients
  layout copy  data moved, not computed: transposes, copies, pads, concatenations, slices
  elementwise  the rest of the arithmetic: SiLU, the normalization's affine, Adam, EMA
  other        the runtime's loops, random numbers, collectives
  between operations   the profiled steps' wall time in which no operation ran: the runtime
               scheduling and launching them (XLA), Python and the dispatcher (torch)

On XLA's side the kinds and the time between operations add up to the wall time of a step:
an operation that finishes on the thread pool is timed to its "end:" event, and operations
running side by side share the time (jax_profile).

    python bench.py --preset cpu --batch_size 128 --torch --profile /tmp/trace
"""
import bisect
import collections
import gzip
import json
import re
import time
import typing
from pathlib import Path

import jax

KINDS = ("convolution", "matmul", "reduction", "layout copy", "elementwise", "other")
BETWEEN = "between operations"

# HLO opcodes that only move data; an instruction (or fusion) made of nothing else is a layout copy
MOVES = {"transpose", "copy", "bitcast", "pad", "concatenate", "slice", "dynamic-slice", "dynamic-update-slice",
         "broadcast", "reshape", "reverse", "parameter", "constant", "tuple", "get-tuple-element", "iota",
         "gather", "bitcast-convert", "convert"}
OTHER = {"while", "call", "conditional", "all-reduce", "all-gather", "rng-bit-generator", "custom-call",
         "sort", "infeed", "outfeed", "after-all", "partition-id", "replica-id"}


class Instruction(typing.NamedTuple):
    opcode: str
    shape: str  # of its output, e.g. "f32[128,16,16,32]"
    fused: set | None  # opcodes of the computation it fuses or calls
    source: str  # the Python line that made it: "function (file.py:line)", or ""


def hlo_sources(lines):
    """{stack frame id: "function (file.py:line)"} from the tables that close a compiled HLO
    module's text (FileNames, FunctionNames, FileLocations, StackFrames)."""
    tables, section = collections.defaultdict(dict), None
    for line in lines:
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            section = line
        elif section and (entry := re.match(r"(\d+) (.*)", line)):
            value = entry[2].strip('"')
            if value.startswith("{"):
                value = dict(re.findall(r"(\w+)=(\d+)", value))
            tables[section][entry[1]] = value
        else:
            section = None
    sources = {}
    for frame, fields in tables["StackFrames"].items():
        location = tables["FileLocations"].get(fields.get("file_location_id"), {})
        file = tables["FileNames"].get(location.get("file_name_id"), "?")
        function = tables["FunctionNames"].get(location.get("function_name_id"), "?").rsplit(".", 1)[-1]  # no <locals>
        sources[frame] = f"{function} ({Path(file).name}:{location.get('line', '?')})"
    return sources


def hlo_instructions(hlo_text):
    """{name: Instruction} for every instruction of a compiled HLO module's text (the names its
    profile events carry). A fusion's source is that of its root, or else of the first of its
    instructions that has one."""
    lines = hlo_text.splitlines()
    sources = hlo_sources(lines)
    line_re = re.compile(r"\s*(ROOT )?%?([\w.\-]+) = (\S+(?: \S+\])?) ([\w\-]+)\(")
    computations, frames, current, raw = {}, {}, None, {}
    for line in lines:
        if header := re.match(r"(?:ENTRY )?%?([\w.\-]+) .*\{\s*$", line):
            current = header[1]
            computations[current], frames[current] = set(), []
        elif m := line_re.match(line):
            is_root, name, shape, opcode = m[1], m[2], m[3].split("{")[0], m[4]
            frame = re.search(r"stack_frame_id=(\d+)", line)
            if current is not None:
                computations[current].add(opcode)
                if frame and is_root:
                    frames[current].insert(0, frame[1])
                elif frame:
                    frames[current].append(frame[1])
            calls = re.search(r"calls=%?([\w.\-]+)", line)
            raw.setdefault(name, (opcode, shape, calls[1] if calls else None, frame[1] if frame else None))
    instructions = {}
    for name, (opcode, shape, called, frame) in raw.items():
        frame = frame or next(iter(frames.get(called) or []), None)
        instructions[name] = Instruction(opcode, shape, computations.get(called) if called else None,
                                         sources.get(frame, ""))
    return instructions


def hlo_kind(opcode, fused=None):
    """The kind (one of KINDS) of an HLO instruction; a fusion by the heaviest op it fuses."""
    ops = fused if fused is not None else {opcode}
    if "convolution" in ops:
        return "convolution"
    if "dot" in ops:
        return "matmul"
    if ops & {"reduce", "reduce-window"}:
        return "reduction"
    if ops & OTHER:
        return "other"
    if ops & {"transpose", "copy"} or ops <= MOVES:  # a transpose sets the cost of what it is fused with
        return "layout copy"
    return "elementwise"


def trace_events(trace_dir):
    """[(name, start, duration)] in microseconds, the complete events of the newest perfetto
    trace jax.profiler wrote to trace_dir."""
    traces = sorted(Path(trace_dir).glob("plugins/profile/*/perfetto_trace.json.gz"))
    if not traces:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {trace_dir}/plugins/profile")
    with gzip.open(traces[-1]) as f:
        events = json.load(f)
    events = events["traceEvents"] if isinstance(events, dict) else events
    return [(e["name"], e["ts"], e.get("dur", 0)) for e in events if e.get("ph") == "X"]


def time_shares(spans):
    """Each (start, duration) span's share of the time: while k spans run at once, each is given
    1/k of that time (they share the cores), so the shares add up to the time in which anything
    ran, the length of the spans' union."""
    events = sorted([(start, 1, i) for i, (start, _) in enumerate(spans)]
                    + [(start + duration, 0, i) for i, (start, duration) in enumerate(spans)])  # ends first
    shares, running, then = [0.0] * len(spans), set(), None
    for time_, is_start, i in events:
        if running:
            for j in running:
                shares[j] += (time_ - then) / len(running)
        then = time_
        (running.add if is_start else running.discard)(i)
    return shares


def operation_spans(events, instructions):
    """[(name, start, duration)] of the operations among trace events. An operation's event ends
    when the runtime has launched it; one that runs on the thread pool (Eigen's convolutions,
    for one) finishes later, at its "end: <name>" event, so each operation spans from its event's
    start to its first "end:" event after that (or its event's end, where there is none)."""
    ends = collections.defaultdict(list)
    for name, start, micros in events:
        if name.startswith("end: "):
            ends[name[5:]].append(start + micros)
    for times in ends.values():
        times.sort()
    spans = []
    for name, start, micros in events:
        if name in instructions:  # python frames and the executor's own spans carry other names
            times = ends.get(name, [])
            after = bisect.bisect_left(times, start)
            spans.append((name, start, max(micros, times[after] - start) if after < len(times) else micros))
    return spans


def jax_profile(run, hlo_text, trace_dir, steps=5):
    """Trace `steps` calls of run() (a train step already compiled, whose program's HLO text is
    hlo_text) into trace_dir. Returns ({kind: ms per step, and BETWEEN}, [(ms per step, kind,
    instruction, output shape, source line)] heaviest first). XLA runs independent operations
    side by side (and the devices' programs too): an operation is given its share of the time
    it ran (time_shares), so the kinds and BETWEEN, the wall time in which no operation ran,
    add up to the wall time of a step."""
    with jax.profiler.trace(str(trace_dir), create_perfetto_trace=True):
        start = time.perf_counter()
        for _ in range(steps):
            jax.block_until_ready(run())
        wall_ms = (time.perf_counter() - start) * 1e3 / steps
    instructions = hlo_instructions(hlo_text)
    spans = operation_spans(trace_events(trace_dir), instructions)
    totals = collections.Counter()
    for (name, _, _), share in zip(spans, time_shares([(start, micros) for _, start, micros in spans])):
        totals[name] += share * 1e-3 / steps
    by_kind, ops = dict.fromkeys(KINDS, 0.0), []
    for name, ms in totals.items():
        instruction = instructions[name]
        kind = hlo_kind(instruction.opcode, instruction.fused)
        by_kind[kind] += ms
        ops.append((ms, kind, name, instruction.shape, instruction.source))
    return {**by_kind, BETWEEN: max(0.0, wall_ms - sum(by_kind.values()))}, sorted(ops, reverse=True)


def torch_kind(op_name):
    """The kind (one of KINDS) of an aten op, by its name."""
    name = op_name.removeprefix("aten::")
    if "conv" in name:
        return "convolution"
    if name in ("mm", "bmm", "addmm", "baddbmm", "matmul", "linear") or "attention" in name:
        return "matmul"
    if "norm" in name or "softmax" in name or name in ("sum", "mean", "var", "std", "var_mean"):
        return "reduction"
    if name in ("copy_", "cat", "clone", "contiguous", "constant_pad_nd", "index", "index_select", "repeat",
                "upsample_nearest2d", "upsample_nearest2d_backward", "embedding", "embedding_backward",
                "embedding_dense_backward", "narrow", "split", "stack", "unsqueeze", "expand", "permute",
                "transpose", "t", "view", "reshape", "as_strided", "slice", "select", "_to_copy", "to"):
        return "layout copy"
    if name in ("empty", "empty_like", "zeros", "zeros_like", "ones_like", "fill_", "zero_", "resize_",
                "detach", "detach_", "set_", "result_type", "item", "_local_scalar_dense", "empty_strided"):
        return "other"
    return "elementwise"


def torch_profile(run, steps=5):
    """Profile `steps` calls of run() (a torch train step, already warmed up) with torch.profiler.
    Returns ({kind: ms per step, and BETWEEN}, [(ms per step, kind, aten op, '', '')] heaviest first),
    from each op's self time (its own work, not its callees')."""
    import torch

    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            run()
        wall_ms = (time.perf_counter() - start) * 1e3 / steps
    by_kind, ops = dict.fromkeys(KINDS, 0.0), []
    for event in prof.key_averages():
        if not event.key.startswith("aten::") or event.self_cpu_time_total <= 0:
            continue
        ms, kind = event.self_cpu_time_total * 1e-3 / steps, torch_kind(event.key)
        by_kind[kind] += ms
        ops.append((ms, kind, event.key, "", ""))
    # torch runs one op at a time: the ops and the time between them add up to the wall time
    return {**by_kind, BETWEEN: max(0.0, wall_ms - sum(by_kind.values()))}, sorted(ops, reverse=True)


def heaviest_by_kind(ops, n):
    """The n heaviest operations of each kind, heaviest first within a kind, kinds in KINDS order."""
    return [op for kind in KINDS for op in [op for op in ops if op[1] == kind][:n]]


def by_source(ops):
    """[(ms per step, kind, source line)] heaviest first: the operations' time summed over the
    Python line that made them (one line makes several operations: its forward, its backward)."""
    totals = collections.Counter()
    for ms, kind, _, _, source in ops:
        if source:
            totals[kind, source] += ms
    return sorted(((ms, kind, source) for (kind, source), ms in totals.items()), reverse=True)


def profile_table(jax_kinds, torch_kinds=None):
    """Markdown lines: ms per step of each kind (and BETWEEN) for JAX, beside torch where given,
    with each row's share of its side's sum."""
    both = torch_kinds is not None
    lines = ["| kind | JAX ms | JAX share |" + (" torch ms | torch share | JAX - torch ms |" if both else ""),
             "|---|---|---|" + ("---|---|---|" if both else "")]
    jax_total, torch_total = sum(jax_kinds.values()), sum(torch_kinds.values()) if both else 0
    for kind in (*KINDS, BETWEEN):
        line = f"| {kind} | {jax_kinds[kind]:.1f} | {100 * jax_kinds[kind] / jax_total:.0f}% |"
        if both:
            line += (f" {torch_kinds[kind]:.1f} | {100 * torch_kinds[kind] / torch_total:.0f}% | "
                     f"{jax_kinds[kind] - torch_kinds[kind]:+.1f} |")
        lines.append(line)
    last = f"| sum of the rows | {jax_total:.1f} | |"
    lines.append(last + (f" {torch_total:.1f} | | {jax_total - torch_total:+.1f} |" if both else ""))
    return lines


def print_profile(jax_kinds, jax_ops, torch_kinds=None, torch_ops=None, top=12, what="train step"):
    """The table of kinds (JAX beside torch where given) and the heaviest operations of each side."""
    print(f"\nwhere the time of a {what} goes, ms per step (5 profiled steps; profiling slows a step a little)")
    print("\n".join(profile_table(jax_kinds, torch_kinds)))
    for side, ops in (("JAX", jax_ops), ("torch", torch_ops)):
        if ops:
            print(f"\nheaviest {side} operations, ms per step:")
            for ms, kind, name, shape, source in ops[:top]:
                print(f"  {ms:7.2f}  {kind:12s} {name} {shape}" + (f"  <- {source}" if source else ""))
    print("\nheaviest lines of the JAX code, ms per step (their operations summed):")
    for ms, kind, source in by_source(jax_ops)[:top]:
        print(f"  {ms:7.2f}  {kind:12s} {source}")
