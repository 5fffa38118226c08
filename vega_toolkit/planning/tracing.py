"""Executing a step without memory: fake tensors, the live bytes they would occupy, and the FLOPs they would cost.

    with FakeExecution() as ex:                 # every tensor created inside is a FakeTensor (no storage)
        batch = ex.real_sample(batch)           # real values, fake tensors
        ...build, step...
    ex.memory.peak(), ex.memory.live_at(t), ex.total_flops()

Two dispatch modes under one FakeTensorMode: ``LiveMemory`` (storages' birth and death, the peak, FLOPs of every
executed matrix product) and ``KnownSampleValues`` (values computed from the batch alone stay real). How and why:
docs/design.md#tracing-a-step-on-fake-tensors; what fake CPU tensors cannot show: cuda_model.py.
"""

import itertools
import weakref
from dataclasses import dataclass, field

import torch
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes
from torch.utils._pytree import tree_flatten, tree_map
from torch.utils.flop_counter import flop_registry
from torch.utils.weak import WeakIdKeyDictionary


@dataclass
class StorageRecord:
    nbytes: int
    born: int  # operator counter at creation
    op: str
    shape: tuple
    dtype: torch.dtype
    died: int | None = None
    saved_for_backward: bool = False


@dataclass
class TensorAtPeak:
    nbytes: int
    category: str
    op: str
    shape: tuple
    dtype: torch.dtype


class LiveMemory(TorchDispatchMode):
    """Live storage bytes over one execution (see the module docstring)."""

    def __init__(self):
        super().__init__()
        self.clock = itertools.count(1)
        self.now = 0
        self.records: list[StorageRecord] = []
        self._index = WeakIdKeyDictionary()  # storage -> index into records
        self._refs = []  # the weakrefs whose callbacks stamp deaths
        self.flops = 0

    def track(self, tensor: torch.Tensor, op: str) -> int | None:
        """Register ``tensor``'s storage (once); returns its record index."""
        storage = tensor.untyped_storage()
        index = self._index.get(storage)
        if index is not None:
            return index
        index = len(self.records)
        self.records.append(StorageRecord(storage.nbytes(), self.now, op, tuple(tensor.shape), tensor.dtype))
        self._index[storage] = index
        self._refs.append(weakref.ref(storage, lambda _ref, i=index: self._died(i)))
        return index

    def _died(self, index: int):
        if self.records[index].died is None:
            self.records[index].died = self.now

    def track_existing(self, tensors, op: str):
        for t in tensors:
            if isinstance(t, torch.Tensor):
                self.track(t, op)

    def mark_saved(self, tensor: torch.Tensor):
        index = self.track(tensor, "saved")
        self.records[index].saved_for_backward = True

    def index_of(self, tensor: torch.Tensor) -> int | None:
        return self._index.get(tensor.untyped_storage())

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.now = next(self.clock)
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        packet = func.overloadpacket
        if packet in flop_registry:
            self.flops += flop_registry[packet](*args, **kwargs, out_val=out)
        name = packet.__name__
        for t in tree_flatten(out)[0]:
            if isinstance(t, torch.Tensor):
                self.track(t, name)
        self.now = next(self.clock)
        return out

    # --- after the execution --------------------------------------------------------------------------------------
    def live_at(self, t: int) -> list[int]:
        return [i for i, r in enumerate(self.records) if r.born <= t and (r.died is None or r.died > t)]

    def peak(self, since: int = 0, until: int | None = None):
        """(peak bytes, time of the peak) between times ``since`` and ``until`` (storages born earlier count from
        ``since``)."""
        until = self.now + 1 if until is None else until
        events = []
        for r in self.records:
            if r.born >= until or (r.died is not None and r.died <= since):
                continue
            events.append((max(r.born, since), r.nbytes))
            if r.died is not None and r.died < until:
                events.append((r.died, -r.nbytes))
        events.sort(key=lambda e: (e[0], e[1] > 0))  # frees before allocations at the same time
        live = best = 0
        best_t = since
        for t, delta in events:
            live += delta
            if live > best:
                best, best_t = live, t
        return best, best_t


_INDEX_OPS = {
    torch.ops.aten.index,
    torch.ops.aten.index_put,
    torch.ops.aten.index_put_,
    torch.ops.aten._index_put_impl_,
    torch.ops.aten._unsafe_index_put,
}


class KnownSampleValues(TorchDispatchMode):
    """Operators whose every tensor input is a function of the real batch run on the real values too."""

    def __init__(self, fake_mode: FakeTensorMode):
        super().__init__()
        self.fake_mode = fake_mode
        self.real = WeakIdKeyDictionary()  # fake tensor -> its real value

    def add(self, real: torch.Tensor) -> torch.Tensor:
        fake = self.fake_mode.from_tensor(real)
        self.real[fake] = real
        return fake

    def _positions(self, indices):
        """Boolean masks of known value -> the integer positions they select (what aten does with them anyway)."""
        out = []
        for index in indices:
            if isinstance(index, torch.Tensor) and index.dtype == torch.bool and index in self.real:
                with _disable_current_modes():
                    columns = self.real[index].nonzero().unbind(1)
                out.extend(self.add(c) for c in columns)
            else:
                out.append(index)
        return out

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket in _INDEX_OPS and len(args) > 1:
            # x[mask] with a mask from the batch: its shape depends on the mask's values, which are known here
            args = (args[0], self._positions(args[1]), *args[2:])
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        if not tensors or not all(t in self.real for t in tensors):
            return func(*args, **kwargs)
        real_args, real_kwargs = tree_map(lambda t: self.real[t] if isinstance(t, torch.Tensor) else t, (args, kwargs))
        with _disable_current_modes():
            real_out = func(*real_args, **real_kwargs)
        return tree_map(lambda t: self.add(t) if isinstance(t, torch.Tensor) else t, real_out)


@dataclass
class Execution:
    memory: LiveMemory
    fake_mode: FakeTensorMode
    sample_values: KnownSampleValues
    marks: dict[str, int] = field(default_factory=dict)

    def mark(self, name: str):
        """Remember the current time under ``name`` (e.g. where the measured step starts)."""
        self.memory.now = next(self.memory.clock)
        self.marks[name] = self.memory.now

    def real_sample(self, sample):
        """The batch as fake tensors whose values stay known (``KnownSampleValues``)."""
        return tree_map(lambda t: self.sample_values.add(t) if isinstance(t, torch.Tensor) else t, sample)

    def total_flops(self) -> int:
        return self.memory.flops


def _apply_by_data(self, fn, recurse=True):
    """nn.Module._apply for fake parameters: torch 2.13 converts them (``.half()``, ``.to(device)``) by
    ``torch.utils.swap_tensors``, which refuses them ("Cannot swap t1 because it has weakref associated with it":
    fake mode keeps a weakref to every fake tensor); assigning ``.data`` converts them in place, as torch did before
    swapping. Tied parameters are one object: the second visit finds it converted already."""
    if recurse:
        for module in self.children():
            module._apply(fn)
    for param in self._parameters.values():
        if param is None:
            continue
        with torch.no_grad():
            applied = fn(param)
        if applied is not param:
            param.data = applied
        if param.grad is not None:
            with torch.no_grad():
                grad = fn(param.grad)
            if grad is not param.grad:
                param.grad.data = grad
    for key, buffer in self._buffers.items():
        if buffer is not None:
            self._buffers[key] = fn(buffer)
    return self


class FakeExecution:
    """Context manager: fake mode, live-memory and FLOP tracking, known batch values, in that order."""

    def __init__(self):
        # Cached index tables (relative positions) are real tensors built before the fake mode: let them in.
        self.fake_mode = FakeTensorMode(allow_non_fake_inputs=True)
        self.execution = Execution(LiveMemory(), self.fake_mode, KnownSampleValues(self.fake_mode))
        self._saved_hooks = None

    def __enter__(self) -> Execution:
        ex = self.execution

        def pack(t):
            ex.memory.mark_saved(t)
            return t

        self._saved_hooks = torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t)
        self._module_apply, torch.nn.Module._apply = torch.nn.Module._apply, _apply_by_data
        self.fake_mode.__enter__()
        ex.memory.__enter__()
        ex.sample_values.__enter__()
        self._saved_hooks.__enter__()
        return ex

    def __exit__(self, *exc):
        ex = self.execution
        self._saved_hooks.__exit__(*exc)
        ex.sample_values.__exit__(*exc)
        ex.memory.__exit__(*exc)
        self.fake_mode.__exit__(*exc)
        torch.nn.Module._apply = self._module_apply
        return False
