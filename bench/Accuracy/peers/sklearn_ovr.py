"""The multi-label peer: scikit-learn's one-vs-rest logistic regression (standardised features, C chosen by 5-fold
cross-validation per label) on the product's features. Usage: sklearn_ovr.py <dir> <labels>; prints one JSON line and
writes the held-out images' probabilities to <dir>/test.proba (one row per image)."""
import json
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegressionCV
from sklearn.metrics import average_precision_score, f1_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

folder, labels = sys.argv[1], int(sys.argv[2])
ytrain = np.loadtxt(f"{folder}/train.labels", dtype=int).reshape(-1, labels)
ytest = np.loadtxt(f"{folder}/test.labels", dtype=int).reshape(-1, labels)
xtrain = np.fromfile(f"{folder}/train.f32", dtype=np.float32).reshape(len(ytrain), -1)
xtest = np.fromfile(f"{folder}/test.f32", dtype=np.float32).reshape(len(ytest), -1)
start = time.time()
model = OneVsRestClassifier(make_pipeline(StandardScaler(), LogisticRegressionCV(Cs=10, cv=5, max_iter=2000)), n_jobs=1)
model.fit(xtrain, ytrain)
seconds = time.time() - start
p = model.predict_proba(xtest)
np.savetxt(f"{folder}/test.proba", p, fmt="%.17g")  # the bench's paired bootstrap of the mAP difference reads it
carried = ytest.sum(axis=0) > 0
ap = [average_precision_score(ytest[:, l], p[:, l]) for l in range(labels) if carried[l]]
predicted = (p >= 0.5).astype(int)
print(json.dumps({
    "mAP": float(np.mean(ap)),
    "macroF1AtHalf": float(np.mean([f1_score(ytest[:, l], predicted[:, l], zero_division=0) for l in range(labels) if carried[l]])),
    "microF1AtHalf": float(f1_score(ytest, predicted, average="micro", zero_division=0)),
    "exactMatchAtHalf": float(np.mean((predicted == ytest).all(axis=1))),
    "trainSeconds": seconds,
}))
