#!/usr/bin/env python3
"""Compare two `camera-app detect` outputs (JSON lines): same images, same
detections in the same order, scores within 1e-3 and boxes within 0.5 px.
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


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: compare_detections.py A.jsonl B.jsonl")
    main(sys.argv[1], sys.argv[2])
