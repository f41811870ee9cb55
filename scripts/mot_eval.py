#!/usr/bin/env python3
"""Score MOTChallenge tracks against ground truth with py-motmetrics
(IoU 0.5), the standard implementation. Runs outside CI.

    pip install motmetrics
    camera-app track --mot-det ../shared/mot/TUD-Campus/det-noisy.txt --fps 25 > tracks.txt
    python3 scripts/mot_eval.py ../shared/mot/TUD-Campus/gt.txt tracks.txt
"""
import json
import sys

import numpy as np

# py-motmetrics 1.4 still calls np.asfarray, which NumPy 2 removed.
if not hasattr(np, "asfarray"):
    np.asfarray = lambda a, dtype=np.float64: np.asarray(a, dtype=dtype)

import motmetrics as mm  # noqa: E402


def load(path):
    rows = {}
    with open(path) as f:
        for line in f:
            p = line.strip().split(",")
            if len(p) < 6:
                continue
            frame, tid = int(float(p[0])), int(float(p[1]))
            box = [float(x) for x in p[2:6]]
            rows.setdefault(frame, []).append((tid, box))
    return rows


def main(gt_path, ts_path):
    gt, ts = load(gt_path), load(ts_path)
    acc = mm.MOTAccumulator(auto_id=True)
    for frame in sorted(set(gt) | set(ts)):
        g, t = gt.get(frame, []), ts.get(frame, [])
        dist = mm.distances.iou_matrix(
            np.array([b for _, b in g]).reshape(-1, 4),
            np.array([b for _, b in t]).reshape(-1, 4),
            max_iou=0.5,
        )
        acc.update([i for i, _ in g], [i for i, _ in t], dist)
    mh = mm.metrics.create()
    s = mh.compute(acc, metrics=["mota", "idf1", "num_switches", "num_false_positives",
                                 "num_misses", "motp", "num_frames"], name="seq")
    row = s.loc["seq"]
    print(json.dumps({
        "mota": round(float(row["mota"]), 4),
        "idf1": round(float(row["idf1"]), 4),
        "id_switches": int(row["num_switches"]),
        "false_positives": int(row["num_false_positives"]),
        "misses": int(row["num_misses"]),
        "motp_distance": round(float(row["motp"]), 4),
        "frames": int(row["num_frames"]),
    }))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: mot_eval.py GT.txt TRACKS.txt")
    main(sys.argv[1], sys.argv[2])
