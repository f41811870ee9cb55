#!/usr/bin/env python3
"""Compare two `camera-app detect` outputs (JSON lines).

Default: same images, same detections in the same order, scores within 1e-3
and boxes within 0.5 px (one backend on two CPUs).

`--int8 CLASS` (CPU against NPU): every CLASS detection of A has one in B
with IoU >= 0.8 and |dscore| <= 0.05, and the other way round, except
detections within 0.05 of the 0.5 score threshold, which int8 may tip.

Exits non-zero on any difference."""
import json
import sys

SCORE_TOL = 1e-3
BOX_TOL = 0.5


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main(a_path, b_path):
    a, b = load(a_path), load(b_path)
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} images vs {len(b)}")
    worst_score = worst_box = 0.0
    count = 0
    for x, y in zip(a, b):
        name = x["image"].rsplit("/", 1)[-1]
        if len(x["detections"]) != len(y["detections"]):
            problems.append(f"{name}: {len(x['detections'])} detections vs {len(y['detections'])}")
            continue
        for dx, dy in zip(x["detections"], y["detections"]):
            count += 1
            ds = abs(dx["score"] - dy["score"])
            db = max(abs(p - q) for p, q in zip(dx["box_xyxy"], dy["box_xyxy"]))
            worst_score, worst_box = max(worst_score, ds), max(worst_box, db)
            if dx["class"] != dy["class"] or ds > SCORE_TOL or db > BOX_TOL:
                problems.append(f"{name}: {dx} vs {dy}")
    print(f"{len(a)} images, {count} detections compared: "
          f"max |dscore| {worst_score:.2e}, max |dbox| {worst_box:.3f} px")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)


def iou(a, b):
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def main_int8(a_path, b_path, cls, threshold=0.5, min_iou=0.8, max_ds=0.05):
    a, b = load(a_path), load(b_path)
    problems = []
    if len(a) != len(b):
        problems.append(f"{len(a)} images vs {len(b)}")
    matched, total, worst_iou, worst_ds = 0, 0, 1.0, 0.0
    for x, y in zip(a, b):
        name = x["image"].rsplit("/", 1)[-1]
        xs = [d for d in x["detections"] if d["class"] == cls]
        ys = [d for d in y["detections"] if d["class"] == cls]
        used = [False] * len(ys)
        for d in xs:
            total += 1
            best = max(((iou(d["box_xyxy"], e["box_xyxy"]), i) for i, e in enumerate(ys) if not used[i]),
                       default=(0.0, None))
            v, i = best
            if i is not None and v >= min_iou and abs(ys[i]["score"] - d["score"]) <= max_ds:
                used[i] = True
                matched += 1
                worst_iou = min(worst_iou, v)
                worst_ds = max(worst_ds, abs(ys[i]["score"] - d["score"]))
            elif d["score"] - threshold > max_ds:
                problems.append(f"{name}: {d} has no match in B (best IoU {v:.3f})")
        for i, e in enumerate(ys):
            if not used[i] and e["score"] - threshold > max_ds:
                problems.append(f"{name}: {e} only in B")
    print(f"{len(a)} images, {matched} of {total} {cls} detections matched: "
          f"worst IoU {worst_iou:.3f}, worst |dscore| {worst_ds:.3f}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    args = sys.argv[1:]
    if len(args) == 4 and args[0] == "--int8":
        main_int8(args[2], args[3], args[1])
    elif len(args) == 2:
        main(args[0], args[1])
    else:
        sys.exit("usage: compare_detections.py [--int8 CLASS] A.jsonl B.jsonl")
