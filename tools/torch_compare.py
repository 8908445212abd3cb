"""PyTorch CPU eager half of the comparison (issue 7); run through scripts/compare-torch.sh.

Reads what examples/torch_compare.rs wrote (the bundle's velocity ONNX graph, source samples, classifier
weights, rows, and our outputs and timings) and runs the same two computations in PyTorch eager:

* generation: the ONNX velocity graph evaluated node by node with torch ops (the graph is small and uses a
  dozen elementwise ops plus Gemm; the interpreter adds one Python call per node, which is what "eager" costs),
  integrated with the same sampler, steps and source samples;
* ensemble forward: M MLPs on shared rows with torch.baddbmm per layer (one batched GEMM per layer).

It checks both against our outputs (relative L2 difference), times them with `runs` repetitions after one
warm-up, and prints a markdown table and a JSON report with the ratios torch / ours (> 1: we are faster).
"""

import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper


def load(dir_: Path, name: str, shape):
    return torch.from_numpy(np.fromfile(dir_ / f"{name}.f32", dtype="<f4").reshape(shape))


class Graph:
    """The velocity graph as a list of torch calls."""

    DTYPES = {onnx.TensorProto.FLOAT: torch.float32, onnx.TensorProto.DOUBLE: torch.float64}

    def __init__(self, path: Path):
        model = onnx.load(str(path))
        g = model.graph
        self.consts = {t.name: torch.from_numpy(numpy_helper.to_array(t).copy()) for t in g.initializer}
        self.nodes = list(g.node)
        self.inputs = [i.name for i in g.input if i.name not in self.consts]
        self.output = g.output[0].name
        for n in self.nodes:
            if n.op_type not in self.OPS:
                raise SystemExit(f"torch_compare: ONNX op {n.op_type} is not interpreted here")

    def attr(n, name, default=None):
        for a in n.attribute:
            if a.name == name:
                return onnx.helper.get_attribute_value(a)
        return default

    def gemm(n, a, b, c=None):
        a = a.T if Graph.attr(n, "transA", 0) else a
        b = b.T if Graph.attr(n, "transB", 0) else b
        return torch.addmm(c, a, b) if c is not None else a @ b

    OPS = {
        "Add": lambda n, a, b: a + b,
        "Sub": lambda n, a, b: a - b,
        "Mul": lambda n, a, b: a * b,
        "Div": lambda n, a, b: a / b,
        "Max": lambda n, a, b: torch.maximum(a, b),
        "Sin": lambda n, a: torch.sin(a),
        "Cos": lambda n, a: torch.cos(a),
        "Sqrt": lambda n, a: torch.sqrt(a),
        "Sigmoid": lambda n, a: torch.sigmoid(a),
        "Reciprocal": lambda n, a: torch.reciprocal(a),
        "Identity": lambda n, a: a,
        "Cast": lambda n, a: a.to(Graph.DTYPES[Graph.attr(n, "to")]),
        "Concat": lambda n, *xs: torch.cat(xs, dim=Graph.attr(n, "axis")),
        "Gemm": gemm,
    }

    def __call__(self, **feeds):
        env = dict(self.consts)
        env.update(feeds)
        for n in self.nodes:
            env[n.output[0]] = self.OPS[n.op_type](n, *(env[i] for i in n.input))
        return env[self.output]


def integrate(v, sampler: str, steps: int, x):
    h = 1.0 / steps
    m = x.shape[0]
    tt = lambda t: torch.full((m, 1), t, dtype=torch.float64)
    for i in range(steps):
        t = i * h
        if sampler == "euler":
            x = x + h * v(x=x, t=tt(t))
        elif sampler == "heun":
            k1 = v(x=x, t=tt(t))
            k2 = v(x=x + h * k1, t=tt(t + h))
            x = x + (h / 2) * k1 + (h / 2) * k2
        else:
            raise SystemExit(f"torch_compare: sampler {sampler} not implemented here")
    return x


def forward(layers, act, thetas, x):
    m = thetas.shape[0]
    a = x.expand(m, *x.shape)
    for li, l in enumerate(layers):
        w = thetas[:, l["w_offset"] : l["w_offset"] + l["out"] * l["in"]].reshape(m, l["out"], l["in"])
        b = thetas[:, l["b_offset"] : l["b_offset"] + l["out"]].reshape(m, 1, l["out"])
        a = torch.baddbmm(b, a, w.transpose(1, 2))
        if li + 1 < len(layers):
            a = act(a)
    return a


ACTIVATIONS = {"relu": torch.relu, "tanh": torch.tanh, "silu": torch.nn.functional.silu, "gelu": torch.nn.functional.gelu}


def timed(runs, f):
    f()  # warm-up
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return out


def rel(a, b):
    a, b = a.double(), b.double()
    return float(torch.linalg.norm(a - b) / torch.linalg.norm(b))


def gemm_rate(threads: int, n: int = 1024, runs: int = 10) -> float:
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = statistics.median(timed(runs, lambda: a @ b))
    return 2 * n**3 / (ms * 1e-3) / 1e9


def main():
    if len(sys.argv) != 2:
        raise SystemExit("usage: torch_compare.py OUT_DIR (written by examples/torch_compare.rs)")
    out = Path(sys.argv[1])
    rust = json.loads((out / "rust.json").read_text())
    runs, dim = rust["runs"], rust["dim"]
    cores = torch.get_num_threads()
    graph = Graph(out / "velocity.onnx")
    act = ACTIVATIONS[rust["activation"]]
    rows = []

    gemm = {t: gemm_rate(t) for t in sorted({1, cores})}
    with torch.inference_mode():
        for g in rust["generation_onnxruntime"]:
            m = g["m"]
            x0 = load(out, f"gen_x0_{m}", (m, dim))
            ours = load(out, f"gen_x1_{m}", (m, dim))
            threads = g["threads"] or cores  # 0: onnxruntime's default, every core
            torch.set_num_threads(threads)
            go = lambda: integrate(graph, rust["sampler"], rust["steps"], x0)
            diff = rel(go(), ours)
            t = statistics.median(timed(runs, go))
            rows.append(dict(what="generation", m=m, threads=threads, ours_ms=statistics.median(g["ms"]), torch_ms=t, rel_diff=diff))

        x = None
        for f in rust["forward_native_1_thread"]:
            m, b = f["m"], f["rows"]
            if x is None:
                x = load(out, "fwd_x", (b, rust["layers"][0]["in"]))
            thetas = load(out, f"fwd_theta_{m}", (m, dim))
            ours = load(out, f"fwd_logits_{m}", (m, b, rust["layers"][-1]["out"]))
            torch.set_num_threads(1)  # Mlp::logits runs on one thread
            go = lambda: forward(rust["layers"], act, thetas, x)
            diff = rel(go(), ours)
            t = statistics.median(timed(runs, go))
            rows.append(dict(what="ensemble forward", m=m, rows=b, threads=1, ours_ms=statistics.median(f["ms"]), torch_ms=t, rel_diff=diff))

    for r in rows:
        r["ratio"] = r["torch_ms"] / r["ours_ms"]
    print(f"torch {torch.__version__}, {cores} threads; sgemm 1024³: " + ", ".join(f"{v:.1f} GFLOP/s on {k} thread(s)" for k, v in gemm.items()))
    print("| path | M | threads | ours (ms, median) | PyTorch eager (ms, median) | PyTorch / ours | rel. diff |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['what']} | {r['m']} | {r['threads']} | {r['ours_ms']:.2f} | {r['torch_ms']:.2f} | {r['ratio']:.2f} | {r['rel_diff']:.1e} |")
    report = dict(torch=torch.__version__, threads=cores, runs=runs, gemm_gflops=gemm, results=rows)
    (out / "comparison.json").write_text(json.dumps(report, indent=2))
    bad = [r for r in rows if not r["rel_diff"] < 1e-4]
    if bad:
        raise SystemExit(f"torch_compare: PyTorch and weightflow disagree: {bad}")


if __name__ == "__main__":
    main()
