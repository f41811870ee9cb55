#!/usr/bin/env python3
"""onnxruntime's time for FastestDet on this machine: the yardstick for our
CPU backend. Runs outside CI.

    pip install onnxruntime numpy
    python3 scripts/onnxruntime_bench.py --threads 1 > ort.json
    camera-app bench --onnxruntime ort.json

Checks the output against the reference tensors first (max abs diff), then
prints one JSON object with the median and p95 of `--runs` timed runs.
"""
import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
import onnxruntime as ort

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "..", "shared", "models"))
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    args = ap.parse_args()

    model_dir = os.path.join(args.models_dir, "fastestdet")
    ref = os.path.join(model_dir, "reference")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = args.threads
    opts.inter_op_num_threads = 1
    t0 = time.perf_counter()
    sess = ort.InferenceSession(os.path.join(model_dir, "FastestDet.onnx"), opts,
                                providers=["CPUExecutionProvider"])
    load_ms = (time.perf_counter() - t0) * 1e3
    name = sess.get_inputs()[0].name

    max_diff = 0.0
    for sample in ("coco_sample_0", "coco_sample_2"):
        x = np.fromfile(os.path.join(ref, f"{sample}.input.f32"), dtype="<f4").reshape(1, 3, 352, 352)
        want = np.fromfile(os.path.join(ref, f"{sample}.output.f32"), dtype="<f4")
        got = sess.run(None, {name: x})[0].ravel()
        max_diff = max(max_diff, float(np.abs(got - want).max()))

    x = np.fromfile(os.path.join(ref, "coco_sample_0.input.f32"), dtype="<f4").reshape(1, 3, 352, 352)
    for _ in range(10):
        sess.run(None, {name: x})
    times = []
    for _ in range(args.runs):
        t = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t) * 1e3)
    times.sort()
    print(json.dumps({
        "runtime": "onnxruntime",
        "version": ort.__version__,
        "threads": args.threads,
        "runs": args.runs,
        "median_ms": round(statistics.median(times), 3),
        "p95_ms": round(times[int(len(times) * 0.95) - 1], 3),
        "load_ms": round(load_ms, 1),
        "max_abs_diff": max_diff,
        "machine": platform.processor() or platform.machine(),
    }))


if __name__ == "__main__":
    main()
