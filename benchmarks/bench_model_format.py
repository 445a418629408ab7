"""Benchmark: could the product save its pipelines with skops instead of pickle (joblib)?

skops loads a file without running arbitrary code, but only types on an explicit trusted
list. This fits each pipeline the product makes (quick settings, 6,000 rows of the reference
data): sigmoid-calibrated Logistic Regression, Random Forest, XGBoost and the average of the
three (imblearn Pipeline with BankCleaner, ColumnTransformer, BlendClassifier), and the
average wrapped by retraining's RecalibratedModel. For each it saves with skops (deflate),
lists the types skops needs trusted, loads with exactly that list, compares the scores on
2,000 other rows with the original, and compares size and load time with joblib (compress=3,
what the registry writes). It also checks that leaving one of our own types off the list
makes skops refuse the file. It chooses nothing: the registry's docstring says what was
decided from these figures.

Run: ``pip install skops==0.16.0`` (not a product dependency), then
``python benchmarks/bench_model_format.py`` (about 2 minutes on 2 cores).
"""

from __future__ import annotations

import io
import time
import zipfile

import joblib
import numpy as np


def main() -> None:
    """Fit, save, load and print the figures."""
    import skops
    import skops.io as sio

    from termdeposit.core.schema import INPUT_COLUMNS, TARGET
    from termdeposit.data.dataset import load_reference
    from termdeposit.modeling.train import PROFILES, build_pipeline, with_calibration
    from termdeposit.ops.retrain import RecalibratedModel, ScoreMap

    print(f"skops {skops.__version__}, joblib {joblib.__version__}")
    frame = load_reference()
    rows = frame.sample(6000, random_state=0)
    X, y = rows.loc[:, list(INPUT_COLUMNS)], rows[TARGET].to_numpy(int)
    test = frame.drop(rows.index).sample(2000, random_state=1).loc[:, list(INPUT_COLUMNS)]
    models = {}
    for family in ("logreg", "random_forest", "xgboost", "blend"):
        model = with_calibration(build_pipeline(family, 0), "sigmoid", PROFILES["quick"], 0)
        models[f"calibrated {family}"] = model.fit(X, y)
    blend = models["calibrated blend"]
    score_map = ScoreMap.fit("platt", blend.predict_proba(X)[:, 1], y)
    models["recalibrated blend"] = RecalibratedModel.from_fitted(blend, score_map, 1000)

    for name, model in models.items():
        expected = model.predict_proba(test)[:, 1]
        data = sio.dumps(model, compression=zipfile.ZIP_DEFLATED, compresslevel=6)
        trusted = sio.get_untrusted_types(data=data)
        start = time.perf_counter()
        back = sio.loads(data, trusted=trusted)
        skops_load = time.perf_counter() - start
        same = np.allclose(back.predict_proba(test)[:, 1], expected, atol=1e-12)
        pickled = io.BytesIO()
        joblib.dump(model, pickled, compress=3)
        start = time.perf_counter()
        joblib.load(io.BytesIO(pickled.getvalue()))
        joblib_load = time.perf_counter() - start
        print(
            f"{name}: skops {len(data):,} bytes, load {skops_load:.2f} s, same scores {same}; "
            f"joblib {len(pickled.getvalue()):,} bytes, load {joblib_load:.2f} s; "
            f"{len(trusted)} types to trust: {', '.join(trusted)}"
        )
        own = [t for t in trusted if t.startswith("termdeposit.")]
        try:
            sio.loads(data, trusted=[t for t in trusted if t != own[0]])
            print(f"  loaded without trusting {own[0]}: skops does not guard it")
        except Exception as exc:  # skops refuses a type that is not on the list
            print(f"  without {own[0]} on the list: {type(exc).__name__}")


if __name__ == "__main__":
    main()
