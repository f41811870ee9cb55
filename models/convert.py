#!/usr/bin/env python3
"""Convert a model's ONNX weights to int8 .rknn files for the Rockchip NPUs.

A developer tool, not part of CI: it needs rknn-toolkit2, which needs
x86-64 Linux, Python 3.11 and torch 2.4 (see models/README.md).

    python3.11 -m venv $HOME/.venvs/rknn
    $HOME/.venvs/rknn/bin/pip install -r models/requirements-rknn.txt
    $HOME/.venvs/rknn/bin/python models/convert.py fastestdet \\
        --images ../shared/images --soc rk3588 --soc rk3568 --soc rv1106 \\
        --update-manifest > convert.json

For each SoC it:
  1. reads models/<name>/model.toml (input size, channel order, scale,
     mean, std) and checks the ONNX file against the manifest's sha256;
  2. fuses Pad nodes into the following Conv / pooling node (onnxoptimizer
     `fuse_pad_into_conv`, `fuse_pad_into_pool`: exact, checked with
     onnxruntime), which the toolkit needs for FastestDet;
  3. configures the toolkit so the NPU model takes uint8 NHWC pixels in the
     manifest's channel order (mean_values = mean / scale, std_values =
     std / scale: the NPU computes (pixel - mean_values) / std_values);
  4. quantises to int8 (w8a8) with the images of models/<name>/calibration.txt
     (paths relative to --images), preprocessed exactly as the camera does
     (resize with area interpolation, manifest channel order);
  5. builds and exports <out-dir>/<file stem>-<soc>.rknn;
  6. runs the toolkit's simulator on every calibration image and compares
     each output with onnxruntime on the original ONNX model fed the same
     preprocessed input: Pearson correlation and max abs diff.

It prints one JSON object on stdout (the toolkit's log goes to stderr) and
exits 1 if any output's correlation on any image is below
--min-correlation (0.99). With --update-manifest, the SoCs that passed get a
[npu.<soc>] table in the manifest (file, toolkit, dtype, correlation).
"""
import argparse
import contextlib
import hashlib
import importlib.metadata
import json
import os
import re
import sys
import tempfile
import time
import tomllib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.path.join(ROOT, "models")
SOCS = ("rk3588", "rk3568", "rv1106")
DTYPE = "int8"
# With --hybrid-cos-thresh, layers whose int8 result strays from float are
# kept in float16 (the output too): not on RV1103/RV1106, whose NPU has no
# float16 convolution.
HYBRID_DTYPE = "int8+fp16"
NO_FP16 = ("rv1106",)


def log(msg):
    print(msg, file=sys.stderr, flush=True)


@contextlib.contextmanager
def stdout_to_stderr():
    """The toolkit prints to stdout (also from C): keep stdout for the JSON."""
    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def toolkit_version():
    return "rknn-toolkit2 " + importlib.metadata.version("rknn-toolkit2")


def load_manifest(name):
    path = os.path.join(MODELS, name, "model.toml")
    with open(path, "rb") as f:
        return path, tomllib.load(f)


def read_calibration(name, images_dir, list_path=None):
    list_path = list_path or os.path.join(MODELS, name, "calibration.txt")
    paths = []
    with open(list_path, encoding="utf-8") as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            p = os.path.join(images_dir, line)
            if not os.path.isfile(p):
                sys.exit(f"error: {list_path}: {line}: no such image under {images_dir}")
            paths.append(p)
    if not paths:
        sys.exit(f"error: {list_path} lists no images")
    return list_path, paths


def preprocess(path, inp):
    """An image as the camera feeds it: (uint8 HWC pixels for the NPU, f32
    NCHW tensor for onnxruntime), both in the manifest's channel order."""
    import cv2

    bgr = cv2.imread(path, cv2.IMREAD_COLOR)
    if bgr is None:
        sys.exit(f"error: cannot read image {path}")
    bgr = cv2.resize(bgr, (inp["width"], inp["height"]), interpolation=cv2.INTER_AREA)
    order = inp["channel_order"]
    if order == "bgr":
        pix = bgr
    elif order == "rgb":
        pix = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    else:
        sys.exit(f"error: channel_order {order!r} is not supported (bgr, rgb)")
    pix = np.ascontiguousarray(pix, dtype=np.uint8)
    scale = np.float32(inp["scale"])
    mean = np.asarray(inp["mean"], dtype=np.float32)
    std = np.asarray(inp["std"], dtype=np.float32)
    x = (pix.astype(np.float32) * scale - mean) / std
    if inp.get("layout", "nchw") == "nchw":
        x = x.transpose(2, 0, 1)
    return pix, np.ascontiguousarray(x[None], dtype=np.float32)


def fuse_pads(onnx_path, out_path):
    """Fuse Pad into the following Conv/pool node; check the result is exact."""
    import onnx
    import onnxoptimizer
    import onnxruntime as ort

    model = onnx.load(onnx_path)
    before = sum(n.op_type == "Pad" for n in model.graph.node)
    fused = onnxoptimizer.optimize(model, ["fuse_pad_into_conv", "fuse_pad_into_pool"])
    after = sum(n.op_type == "Pad" for n in fused.graph.node)
    onnx.checker.check_model(fused)
    onnx.save(fused, out_path)

    # Same outputs on a random input (the fusion is exact: pooling gets
    # count_include_pad = 1).
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    a = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    b = ort.InferenceSession(out_path, opts, providers=["CPUExecutionProvider"])
    i = a.get_inputs()[0]
    shape = [d if isinstance(d, int) else 1 for d in i.shape]
    x = np.random.default_rng(0).random(shape, dtype=np.float32)
    diff = max(float(np.abs(p - q).max()) for p, q in zip(a.run(None, {i.name: x}), b.run(None, {i.name: x})))
    if diff > 1e-5:
        sys.exit(f"error: Pad fusion changed the model's output (max abs diff {diff})")
    return {"pads_before": before, "pads_after": after, "max_abs_diff": diff}


def pearson(a, b):
    a = a.astype(np.float64).ravel()
    b = b.astype(np.float64).ravel()
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / den) if den > 0 else float(np.array_equal(a, b))


def convert_one(soc, fused_onnx, onnx_path, manifest, samples, npy_list, out_path, args):
    from rknn.api import RKNN
    import onnxruntime as ort

    inp = manifest["input"]
    scale = float(inp["scale"])
    mean_values = [[m / scale for m in inp["mean"]]]
    std_values = [[s / scale for s in inp["std"]]]

    hybrid = args.hybrid_cos_thresh is not None
    if hybrid and soc in NO_FP16:
        raise RuntimeError(f"{soc} has no float16 convolution: --hybrid-cos-thresh is not possible")
    result = {"soc": soc, "file": os.path.basename(out_path), "mean_values": mean_values,
              "std_values": std_values, "quantized_algorithm": args.algorithm,
              "dtype": HYBRID_DTYPE if hybrid else DTYPE}
    extra = {"auto_hybrid_cos_thresh": args.hybrid_cos_thresh} if hybrid else {}
    t0 = time.perf_counter()
    with stdout_to_stderr():
        rknn = RKNN(verbose=args.verbose)
        try:
            rc = rknn.config(mean_values=mean_values, std_values=std_values,
                             target_platform=soc, quantized_dtype="w8a8",
                             quantized_algorithm=args.algorithm,
                             quantized_method="channel", optimization_level=3, **extra)
            if rc != 0:
                raise RuntimeError(f"config failed ({rc})")
            if rknn.load_onnx(model=fused_onnx) != 0:
                raise RuntimeError("load_onnx failed")
            if rknn.build(do_quantization=True, dataset=npy_list, auto_hybrid=hybrid) != 0:
                raise RuntimeError("build failed")
            if rknn.export_rknn(out_path) != 0:
                raise RuntimeError("export_rknn failed")
            result["build_s"] = round(time.perf_counter() - t0, 1)
            if rknn.init_runtime() != 0:  # no target: the x86 simulator
                raise RuntimeError("init_runtime (simulator) failed")
            sim = [rknn.inference(inputs=[pix[None]], data_format="nhwc") for pix, _ in samples]
        finally:
            rknn.release()
    result["size"] = os.path.getsize(out_path)

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(onnx_path, opts, providers=["CPUExecutionProvider"])
    in_name = sess.get_inputs()[0].name
    out_names = [o.name for o in sess.get_outputs()]
    outputs = [{"name": n, "correlation": 1.0, "max_abs_diff": 0.0, "per_image": []} for n in out_names]
    for (path, (_, x)), got in zip(zip(args.image_paths, samples), sim):
        want = sess.run(None, {in_name: x})
        if got is None or len(got) != len(want):
            raise RuntimeError(f"simulator returned {0 if got is None else len(got)} outputs, onnxruntime {len(want)}")
        for o, w, g in zip(outputs, want, got):
            g = np.asarray(g, dtype=np.float32)
            if g.size != w.size:
                raise RuntimeError(f"output {o['name']}: simulator shape {g.shape}, onnxruntime {w.shape}")
            g = g.reshape(w.shape)
            c, d = pearson(w, g), float(np.abs(w - g).max())
            o["shape"] = list(w.shape)
            o["per_image"].append({"image": os.path.basename(path), "correlation": round(c, 5),
                                   "max_abs_diff": round(d, 5)})
            o["correlation"] = min(o["correlation"], c)
            o["max_abs_diff"] = max(o["max_abs_diff"], d)
    for o in outputs:
        o["correlation"] = round(o["correlation"], 5)
        o["max_abs_diff"] = round(o["max_abs_diff"], 5)
    result["outputs"] = outputs
    # Rounded down, so the manifest never claims more than was measured.
    result["correlation"] = float(np.floor(min(o["correlation"] for o in outputs) * 1000) / 1000)
    result["ok"] = min(o["correlation"] for o in outputs) >= args.min_correlation
    return result


# --- manifest update ------------------------------------------------------

NPU_INTRO = """\
# NPU models, one table per SoC, written by `models/convert.py --update-manifest`
# (see models/README.md). `file` is the .rknn converted from `file` above for
# that SoC's NPU; it takes uint8 NHWC pixels in `input.channel_order` (the
# mean, std and scale above are folded into the model). dtype "int8" is w8a8
# throughout; "int8+fp16" keeps the layers that int8 hurts most, and the
# output, in float16 (the runtime reports each tensor's type). `correlation`
# is the toolkit simulator's output against onnxruntime's on the same
# preprocessed input: the minimum over outputs and calibration images.
# No sha256: conversion is not bit-reproducible (two runs on the same input
# give different bytes), and the OTA bundle's signature covers integrity.
"""
NPU_MARK = NPU_INTRO.splitlines()[0]
HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")


def npu_table(soc, entry):
    lines = [f"[npu.{soc}]",
        f'file = "{entry["file"]}"',
        f'toolkit = "{entry["toolkit"]}"',
        f'dtype = "{entry["dtype"]}"',
        f"correlation = {entry['correlation']:.3f}     "
        "# simulator vs onnxruntime, minimum over outputs and calibration images",
    ]
    return "\n".join(lines) + "\n"


def strip_npu(text):
    """The manifest without its NPU intro comment and [npu.*] tables."""
    lines = text.splitlines(keepends=True)
    keep = []
    in_npu = False
    for line in lines:
        m = HEADER.match(line)
        if m:
            in_npu = m.group(1) == "npu" or m.group(1).startswith("npu.")
        if in_npu:
            continue
        keep.append(line)
    # Drop our intro block: from its marker over the comment and blank lines
    # that follow it.
    out, skipping = [], False
    for line in keep:
        if line.rstrip("\n") == NPU_MARK:
            skipping = True
        if skipping and (not line.strip() or line.lstrip().startswith("#")):
            continue
        skipping = False
        out.append(line)
    return "".join(out).rstrip() + "\n"


def update_manifest(path, results):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    old = tomllib.loads(text)
    npu = dict(old.get("npu", {}))
    for r in results:
        npu[r["soc"]] = {"file": r["file"], "toolkit": r["toolkit"], "dtype": r["dtype"],
                         "correlation": r["correlation"]}
    body = strip_npu(text)
    order = sorted(npu, key=lambda s: (SOCS.index(s) if s in SOCS else len(SOCS), s))
    tables = "\n".join(npu_table(s, npu[s]) for s in order)
    new = body + "\n" + NPU_INTRO + "\n" + tables
    parsed = tomllib.loads(new)
    rest_old = {k: v for k, v in old.items() if k != "npu"}
    rest_new = {k: v for k, v in parsed.items() if k != "npu"}
    if rest_old != rest_new or parsed.get("npu") != npu:
        sys.exit(f"error: updating {path} would change more than its [npu.*] tables")
    for soc, t in parsed["npu"].items():
        if set(t) != {"file", "toolkit", "dtype", "correlation"}:
            sys.exit(f"error: {path}: [npu.{soc}] has keys {sorted(t)}")
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("name", help="model name: models/<name>/model.toml")
    ap.add_argument("--images", required=True, help="directory the calibration list is relative to")
    ap.add_argument("--calibration", help="list of images (default models/<name>/calibration.txt)")
    ap.add_argument("--soc", action="append", choices=SOCS, help="target SoC (repeat; default all)")
    ap.add_argument("--models-dir", default=os.path.join(ROOT, "..", "shared", "models"),
                    help="where <name>/<file> (the ONNX weights) is (default ../shared/models)")
    ap.add_argument("--onnx", help="the ONNX file (default <models-dir>/<name>/<manifest file>)")
    ap.add_argument("--out-dir", help="where the .rknn files go (default target/rknn/<name>)")
    ap.add_argument("--algorithm", default="normal", choices=("normal", "mmse", "kl_divergence"),
                    help="the toolkit's quantized_algorithm")
    ap.add_argument("--hybrid-cos-thresh", type=float, metavar="COS",
                    help="keep in float16 the layers whose int8 cosine similarity is below COS "
                         "(the toolkit's auto_hybrid; e.g. 0.999; not on rv1106); dtype int8+fp16")
    ap.add_argument("--min-correlation", type=float, default=0.99)
    ap.add_argument("--update-manifest", action="store_true",
                    help="write [npu.<soc>] tables for the SoCs that passed")
    ap.add_argument("--verbose", action="store_true", help="the toolkit's verbose log (stderr)")
    args = ap.parse_args()
    socs = args.soc or list(SOCS)

    manifest_path, manifest = load_manifest(args.name)
    onnx_path = args.onnx or os.path.join(args.models_dir, args.name, manifest["file"])
    if not os.path.isfile(onnx_path):
        sys.exit(f"error: {onnx_path} not found: `camera-app models fetch {args.name}` gets it")
    digest = sha256(onnx_path)
    if digest != manifest["sha256"]:
        sys.exit(f"error: {onnx_path}: sha256 {digest}, the manifest says {manifest['sha256']}")
    list_path, args.image_paths = read_calibration(args.name, args.images, args.calibration)
    out_dir = args.out_dir or os.path.join(ROOT, "target", "rknn", args.name)
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.splitext(manifest["file"])[0]
    toolkit = toolkit_version()

    summary = {"model": args.name, "onnx": os.path.abspath(onnx_path), "onnx_sha256": digest,
               "toolkit": toolkit, "calibration": list_path,
               "images": [os.path.basename(p) for p in args.image_paths],
               "min_correlation": args.min_correlation, "results": []}
    with tempfile.TemporaryDirectory(prefix="rknn-convert-") as tmp:
        fused = os.path.join(tmp, "fused.onnx")
        summary["pad_fusion"] = fuse_pads(onnx_path, fused)
        samples = [preprocess(p, manifest["input"]) for p in args.image_paths]
        npy_list = os.path.join(tmp, "dataset.txt")
        with open(npy_list, "w") as f:
            for i, (pix, _) in enumerate(samples):
                npy = os.path.join(tmp, f"calib{i:04d}.npy")
                # The toolkit wants .npy calibration data in the ONNX
                # input's layout (NCHW) but as raw pixels: it applies
                # mean_values/std_values itself, as the NPU does.
                np.save(npy, np.ascontiguousarray(pix.transpose(2, 0, 1)[None]))
                f.write(npy + "\n")
        for soc in socs:
            out_path = os.path.join(out_dir, f"{stem}-{soc}.rknn")
            log(f"== {args.name} for {soc} -> {out_path}")
            try:
                r = convert_one(soc, fused, onnx_path, manifest, samples, npy_list, out_path, args)
            except Exception as e:  # noqa: BLE001 - reported per SoC
                r = {"soc": soc, "ok": False, "error": f"{type(e).__name__}: {e}"}
            r["toolkit"] = toolkit
            summary["results"].append(r)
            log(f"== {soc}: " + (f"correlation {r['correlation']}, {r['size']} bytes" if "size" in r
                                 else r.get("error", "failed")))

    passed = [r for r in summary["results"] if r["ok"]]
    if args.update_manifest and passed:
        update_manifest(manifest_path, passed)
        summary["manifest_updated"] = [r["soc"] for r in passed]
    summary["ok"] = len(passed) == len(summary["results"])
    print(json.dumps(summary, indent=1))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
