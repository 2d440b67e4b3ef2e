"""Writes fixtures/augment/smote_neighbours.csv: the neighbours imbalanced-learn's SMOTE uses.

The Rust SMOTE (crates/augment) must pick the same k nearest same-class neighbours as
imbalanced-learn, the reference implementation. For every class, SMOTE is fitted so that this
class is the one resampled; `smote.nn_k_` is then the NearestNeighbors(n_neighbors=k+1) that
SMOTE fitted on the class's points, and SMOTE's neighbours of a point are its kneighbors row
without the first column (the point itself).

The points sit on a 1/1024 grid in [0, 4): exact in float32 and float64, so the Rust side,
which reads them as float32, sees the same numbers. Within every class, each point's distances
to the others are all distinct (asserted below), so no tie-breaking rule can change the result.

Rerun (from the repository root; only PyPI is needed):

    python3 -m venv /tmp/imblearn-venv
    /tmp/imblearn-venv/bin/pip install imbalanced-learn scikit-learn
    /tmp/imblearn-venv/bin/python tools/augment/smote_reference.py

Columns: row (0-based row of this file), class (0 or 1), x0, x1, x2, then nn0..nn4: the rows
(of this file) of the point's five neighbours, nearest first.
"""

import csv
import pathlib

import imblearn
import numpy as np
import sklearn
from imblearn.over_sampling import SMOTE

K = 5
ROWS = 30
OUTPUT = pathlib.Path(__file__).resolve().parents[2] / "fixtures/augment/smote_neighbours.csv"

rng = np.random.default_rng(2019)
# Unequal classes, shuffled, so that row indices of the file and of a class differ.
labels = np.array([0] * 17 + [1] * 13)
rng.shuffle(labels)
points = rng.integers(0, 4 * 1024, size=(ROWS, 3)) / 1024.0
points[labels == 1] = np.minimum(points[labels == 1] + 0.5, 4 - 1 / 1024)

neighbours = np.full((ROWS, K), -1)
for cls in (0, 1):
    members = np.flatnonzero(labels == cls)
    other = 1 - cls
    counts = {cls: len(members) + 10, other: int((labels == other).sum())}
    smote = SMOTE(k_neighbors=K, sampling_strategy=counts, random_state=0)
    smote.fit_resample(points, labels)
    class_points = points[members]
    distances = np.sqrt(((class_points[:, None, :] - class_points[None, :, :]) ** 2).sum(-1))
    for row in distances:
        assert len(np.unique(row)) == len(row), "a distance tie: choose another seed"
    within = smote.nn_k_.kneighbors(class_points, return_distance=False)[:, 1:]
    assert within.shape[1] == K
    neighbours[members] = members[within]

assert (neighbours >= 0).all()
with OUTPUT.open("w", newline="") as handle:
    handle.write(
        f"# imbalanced-learn {imblearn.__version__}, scikit-learn {sklearn.__version__}; "
        "written by tools/augment/smote_reference.py\n"
    )
    writer = csv.writer(handle, lineterminator="\n")
    writer.writerow(["row", "class", "x0", "x1", "x2"] + [f"nn{j}" for j in range(K)])
    for row in range(ROWS):
        writer.writerow(
            [row, int(labels[row])]
            + [repr(float(value)) for value in points[row]]
            + [int(index) for index in neighbours[row]]
        )
print(f"wrote {OUTPUT}")
