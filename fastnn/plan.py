"""Executable plans: the steps a container (Sequential, Model) runs, with fusion.

A plan is a list of steps in topological order over numbered value slots: slots
0..n_inputs-1 hold the plan's inputs, every step reads its input slot(s) and writes its
output slot(s). Each step runs a module (or a fused run of modules) in its own
Context, a child of the container's context, so a module appearing at several steps
(shared weights) keeps one context per call.

Fusion goes through a small protocol on layers (fastnn.module.Layer.fuse and
.epilogue): walking the steps in order, each layer is offered the chain of layers
after it in which every intermediate output has exactly one consumer, is not an
output of the plan, and belongs to an unhooked single-input layer; the layer returns a
fused step and how many of them it absorbed (Dense takes an elementwise activation
into its GEMM epilogue, BatchNorm1d takes ReLU and Dropout, BatchNorm2d and Add take
ReLU). A fused step takes its first layer's inputs (a list for Add). Fused steps
compute what their layers compute one by one.

Backward walks the steps in reverse. A slot read by several steps (a residual
connection, a shared input) sums its gradients without copying the first: the next
ones are added into it in place when it is a buffer the pool lent to this slot alone,
else into a buffer of the slot's own; never into an array another slot or the caller
may still read. The input gradients the steps return live in buffers
lent by the plan's GradientPool (Context.grad_workspace) and are taken back as soon as
the step that reads them has run, so a backward holds only the gradients alive at
once, not one per layer. A plan with a hooked step lends none: a hook may keep the
arrays it is shown."""

import math

import numpy as np

_MAX_CHAIN = 4  # the longest run a layer is offered for fusion


class GradientPool:
    """Flat buffers lent for the gradients of one container's backward, each counted
    by the slots that refer to it (or to a view of it) and free again at zero. Every
    buffer is free again when the next backward starts: the gradients a backward
    returns stay valid until then, as workspaces do. Buffers are kept across calls,
    so after the first steps a backward allocates nothing."""

    def __init__(self):
        self.free = []  # flat arrays
        self.lent = {}  # id(buffer) -> [buffer, references]

    def start(self):
        self.free.extend(buf for buf, _ in self.lent.values())
        self.lent.clear()

    def take(self, shape, dtype):
        """A buffer of `shape`: the smallest free one that holds it, or a new one."""
        n, dtype = math.prod(shape), np.dtype(dtype)
        best = None
        for i, buf in enumerate(self.free):
            if (
                buf.dtype == dtype
                and buf.size >= n
                and (best is None or buf.size < self.free[best].size)
            ):
                best = i
        buf = self.free.pop(best) if best is not None else np.empty(n, dtype)
        self.lent[id(buf)] = [buf, 0]
        return buf[:n].reshape(shape)

    def _entry(self, a):
        while isinstance(a, np.ndarray):
            entry = self.lent.get(id(a))
            if entry is not None:
                return entry
            a = a.base
        return None

    def sole(self, a):
        """True if the buffer behind `a` is lent and one slot alone refers to it."""
        entry = self._entry(a)
        return entry is not None and entry[1] == 1

    def refer(self, a, k):
        """Count k more (or fewer) references to the buffer behind `a`, if lent."""
        entry = self._entry(a)
        if entry is not None:
            entry[1] += k
            if entry[1] <= 0:
                del self.lent[id(entry[0])]
                self.free.append(entry[0])


class Step:
    """One step: `run` (a module or fused step) reading `inputs` (slot indices; a list
    input when `multi`) and writing `outputs` (one slot, or several for a module that
    returns a list); `layers` are the modules it stands for."""

    __slots__ = (
        "run",
        "layers",
        "inputs",
        "multi",
        "outputs",
        "hooked",
        "grad_from",
        "plain",
        "inp",
        "out",
        "from_node",
    )

    def __init__(self, run, layers, inputs, multi, outputs):
        self.run, self.layers = run, tuple(layers)
        self.inputs, self.multi, self.outputs = tuple(inputs), multi, tuple(outputs)
        self.hooked = len(self.layers) == 1 and self.layers[0]._hooked
        # Set by Plan: which inputs are computed by steps (so need gradients), and
        # whether this is a plain chain link (one input read by this step alone, one
        # output), which forward and backward run without the general bookkeeping.
        self.grad_from = self.plain = self.from_node = None
        self.inp, self.out = self.inputs[0] if self.inputs else None, self.outputs[0]


class Plan:
    """Steps over slots. `nodes` are (module, input slots, multi, output slots) in
    topological order; `outputs` the slots the plan returns."""

    def __init__(self, nodes, n_inputs, outputs, fuse=True):
        self.n_inputs = n_inputs
        self.outputs = tuple(outputs)
        self.n_slots = 1 + max(
            [n_inputs - 1, *self.outputs, *(s for node in nodes for s in node[3])]
        )
        self.steps = (
            _fuse(nodes, self.outputs)
            if fuse
            else [Step(m, (m,), i, mu, o) for m, i, mu, o in nodes]
        )
        readers = [0] * self.n_slots  # uses of each value: steps reading it, outputs
        for step in self.steps:
            for s in step.inputs:
                readers[s] += 1
        for s in self.outputs:
            readers[s] += 1
        self.readers = readers
        produced = {s for step in self.steps for s in step.outputs}
        for step in self.steps:
            step.grad_from = tuple(s in produced for s in step.inputs)
            step.from_node = any(step.grad_from)
            step.plain = (
                not step.multi
                and len(step.inputs) == 1
                and len(step.outputs) == 1
                and readers[step.inp] == 1
            )

    # -- forward ------------------------------------------------------------------------
    def forward(self, ctx, inputs):
        """The plan's outputs (a list) for `inputs` (a list, one array per input slot)."""
        vals = [None] * self.n_slots
        vals[: self.n_inputs] = inputs
        kids = self._contexts(ctx)
        for k, step in enumerate(self.steps):
            x = [vals[s] for s in step.inputs] if step.multi else vals[step.inp]
            y = step.run._forward(kids[k], x)
            if step.hooked:
                step.layers[0]._run_forward_hooks(x, y)
            if len(step.outputs) == 1:
                vals[step.out] = y
            else:
                for s, v in zip(step.outputs, y):
                    vals[s] = v
        return [vals[s] for s in self.outputs]

    # -- backward -----------------------------------------------------------------------
    def backward(self, ctx, grads_out, need_input_grad=True):
        """Gradients with respect to the plan's inputs (a list; None where not needed or
        not reached) given those of its outputs (None for an output without one)."""
        grads = [None] * self.n_slots
        owned = set()  # shared slots whose gradient is a sum in a buffer of their own
        kids = self._contexts(ctx)
        pool = self._pool(ctx, kids)
        for s, g in zip(self.outputs, grads_out):
            if g is not None:
                self._accumulate(ctx, pool, grads, owned, s, g, self.readers[s] > 1)
        steps = self.steps
        for k in range(len(steps) - 1, -1, -1):
            step = steps[k]
            if step.plain:  # the common case, kept lean
                g = grads[step.out]
                if g is None:
                    continue
                need = need_input_grad or step.from_node
                gin = step.run._backward(kids[k], g, need)
                if step.hooked:
                    step.layers[0]._run_backward_hooks(gin, g)
                if need:
                    grads[step.inp] = gin
                if pool is not None:  # g is consumed; gin is referred to or unused
                    if need:
                        pool.refer(gin, 1)
                    grads[step.out] = None
                    pool.refer(g, -1)
                    if not need and gin is not None:
                        pool.refer(gin, 0)
                continue
            if len(step.outputs) == 1:
                g = grads[step.outputs[0]]
                if g is None:
                    continue  # nothing downstream depends on this step
            else:
                g = [grads[s] for s in step.outputs]
                if all(v is None for v in g):
                    continue
            need = need_input_grad or step.from_node
            gin = step.run._backward(kids[k], g, need)
            if step.hooked:
                step.layers[0]._run_backward_hooks(gin, g)
            gins = () if gin is None else gin if step.multi else (gin,)
            if need:
                for s, gi, from_node in zip(step.inputs, gins, step.grad_from):
                    if gi is not None and (from_node or need_input_grad):
                        self._accumulate(ctx, pool, grads, owned, s, gi, self.readers[s] > 1)
            if pool is not None:  # the outputs' gradients are consumed
                for s in step.outputs:
                    if grads[s] is not None:
                        pool.refer(grads[s], -1)
                        grads[s] = None
                for gi in gins:
                    if gi is not None:
                        pool.refer(gi, 0)
        return [grads[s] for s in range(self.n_inputs)]

    def _pool(self, ctx, kids):
        """The container's gradient pool, its buffers all free again; lent to the
        steps' contexts. None (no lending) when a step is hooked."""
        if any(step.hooked for step in self.steps):
            return None
        pool = ctx.__dict__.get("own_grad_pool")
        if pool is None:
            pool = ctx.own_grad_pool = GradientPool()
            for kid in kids:
                kid.grad_pool = pool
        pool.start()
        return pool

    def _contexts(self, ctx):
        """The contexts of the steps' calls, children of the container's ctx."""
        kids = ctx.__dict__.get("_children")
        if kids is None or len(kids) < len(self.steps):
            kids = [ctx.child(k) for k in range(len(self.steps))]
        return kids

    @staticmethod
    def _accumulate(ctx, pool, grads, owned, slot, g, shared):
        """Record g as (a part of) the gradient of `slot`. The first gradient reaching a
        slot is kept as it is, not copied; a second one is added to it in place if the
        plan may write there (a buffer of the slot's own, or one lent by the pool to
        this slot alone), else both are summed into a buffer of the slot's own."""
        acc = grads[slot] if shared else None
        if acc is None:
            grads[slot] = g
            if pool is not None:
                pool.refer(g, 1)
            return
        if slot in owned or (pool is not None and pool.sole(acc)):
            np.add(acc, g, out=acc)
        else:
            if pool is None:
                buf = ctx.workspace(f"grad{slot}", g.shape, g.dtype)
            else:
                buf = pool.take(g.shape, g.dtype)
                pool.refer(buf, 1)
                pool.refer(acc, -1)
            np.add(acc, g, out=buf)
            grads[slot] = buf
        owned.add(slot)


def _fuse(nodes, outputs):
    """Steps for `nodes`, with the runs the layers agree to fuse fused."""
    readers = {}
    for i, (_, ins, _, _) in enumerate(nodes):
        for s in ins:
            readers.setdefault(s, []).append(i)
    absorbed, steps = set(), []
    for i, (module, ins, multi, outs) in enumerate(nodes):
        if i in absorbed:
            continue
        fused = None
        if len(outs) == 1 and not module._hooked and hasattr(module, "fuse"):
            chain = _chain_after(i, nodes, readers, outputs)
            if chain:
                fused = module.fuse([nodes[j][0] for j in chain])
        if fused is None:
            steps.append(Step(module, (module,), ins, multi, outs))
            continue
        run, n = fused
        taken = chain[:n]
        absorbed.update(taken)
        last_outs = nodes[taken[-1]][3] if taken else outs
        steps.append(Step(run, run.layers, ins, multi, last_outs))
    return steps


def _chain_after(i, nodes, readers, outputs):
    """Indices of the nodes after node i that a fusion may absorb, in order."""
    chain = []
    slot = nodes[i][3][0]
    while len(chain) < _MAX_CHAIN:
        consumers = readers.get(slot, [])
        if len(consumers) != 1 or slot in outputs:
            break
        j = consumers[0]
        module, ins, multi, outs = nodes[j]
        if multi or len(ins) != 1 or len(outs) != 1 or module._hooked:
            break
        chain.append(j)
        slot = outs[0]
    return chain
