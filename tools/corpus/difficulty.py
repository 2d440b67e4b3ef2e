#!/usr/bin/env python3
"""Measure how hard the shipped labelled corpus is.

Leave-one-session-out (5 folds) logistic regression on the raw functionals
of fixtures/corpus/labelled.csv.gz: features standard-scaled on the training
folds only, no per-speaker normalisation; four classes (ang, hap+exc, neu, sad;
fru/sur dropped as the pipeline does). Prints the unweighted average recall
(UAR, mean of per-class recalls) over the pooled predictions of the five folds,
per-class recalls, and the mean of the per-fold UARs. With --cross it also
trains on all labelled sessions and tests on the cross-corpus part.

Usage: difficulty.py [--dir fixtures/corpus] [--cross] [--speaker-norm]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import os
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

CLASSES = ["ang", "hap", "neu", "sad"]
MAP_IEMOCAP = {"ang": "ang", "hap": "hap", "exc": "hap", "neu": "neu", "sad": "sad"}
MAP_MSP = {"A": "ang", "H": "hap", "N": "neu", "S": "sad"}


def read_smile_csv(path: str) -> tuple[list[str], list[str], np.ndarray]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        header = f.readline().rstrip("\n").split(";")
        names, rows = [], []
        for line in f:
            cells = line.rstrip("\n").split(";")
            names.append(cells[0].strip("'"))
            rows.append([float(c) for c in cells[2:]])
    return names, header[2:], np.asarray(rows, dtype=np.float64)


def read_labels(path: str) -> dict[str, dict]:
    with open(path, newline="") as f:
        return {r["utterance_id"]: r for r in csv.DictReader(f)}


def load(d: str, part: str, mapping: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    names, _, x = read_smile_csv(os.path.join(d, f"{part}.csv.gz"))
    labels = read_labels(os.path.join(d, f"{part}_labels.csv"))
    keep, y, sess, spk = [], [], [], []
    for i, n in enumerate(names):
        e = mapping.get(labels[n]["emotion"])
        if e is None:
            continue
        keep.append(i)
        y.append(CLASSES.index(e))
        sess.append(labels[n]["session"])
        spk.append(labels[n]["speaker"])
    return x[keep], np.array(y), np.array(sess), np.array(spk)


def speaker_norm(x: np.ndarray, spk: np.ndarray) -> np.ndarray:
    x = x.copy()
    for s in np.unique(spk):
        m = spk == s
        mu, sd = x[m].mean(0), x[m].std(0)
        x[m] = (x[m] - mu) / np.where(sd > 0, sd, 1.0)
    return x


def recalls(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    return np.array([np.mean(p[y == c] == c) if np.any(y == c) else np.nan
                     for c in range(len(CLASSES))])


def model() -> LogisticRegression:
    return LogisticRegression(C=1.0, max_iter=5000)


def fit_predict(xtr, ytr, xte):
    sc = StandardScaler().fit(xtr)
    clf = model().fit(sc.transform(xtr), ytr)
    return clf.predict(sc.transform(xte))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--dir", default=os.path.join(here, "..", "..", "fixtures", "corpus"))
    ap.add_argument("--cross", action="store_true", help="also test on the cross-corpus part")
    ap.add_argument("--speaker-norm", action="store_true",
                    help="z-normalise features per speaker first (for comparison only)")
    args = ap.parse_args(argv)

    x, y, sess, spk = load(args.dir, "labelled", MAP_IEMOCAP)
    if args.speaker_norm:
        x = speaker_norm(x, spk)
    pred = np.empty_like(y)
    fold_uar = []
    for s in sorted(set(sess)):
        te = sess == s
        pred[te] = fit_predict(x[~te], y[~te], x[te])
        fold_uar.append(np.nanmean(recalls(y[te], pred[te])))
    r = recalls(y, pred)
    counts = {c: int(np.sum(y == i)) for i, c in enumerate(CLASSES)}
    print(f"labelled: {len(y)} utterances {counts}, 1582 features, "
          f"{'per-speaker z-norm, ' if args.speaker_norm else ''}LOSO over {len(fold_uar)} sessions")
    print(f"LOSO logistic regression UAR: {100 * np.mean(r):.1f}%")
    print("per-class recall: " + ", ".join(f"{c} {100 * v:.1f}%" for c, v in zip(CLASSES, r)))
    print("per-fold UAR: " + ", ".join(f"{100 * u:.1f}%" for u in fold_uar)
          + f" (mean {100 * np.mean(fold_uar):.1f}%)")
    print(f"accuracy (WAR): {100 * np.mean(pred == y):.1f}%")
    if args.cross:
        xc, yc, _, spkc = load(args.dir, "crosscorpus", MAP_MSP)
        if args.speaker_norm:
            xc = speaker_norm(xc, spkc)
        pc = fit_predict(x, y, xc)
        rc = recalls(yc, pc)
        print(f"cross-corpus (train labelled, test crosscorpus, {len(yc)} utterances): "
              f"UAR {100 * np.nanmean(rc):.1f}%; "
              + ", ".join(f"{c} {100 * v:.1f}%" for c, v in zip(CLASSES, rc)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
