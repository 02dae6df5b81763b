"""Pure modelling core of the churn model.

Everything in this package works on pandas DataFrames and numpy arrays only: no
database, no Prefect.  The flows/tasks layer reads tables, calls these functions and
writes the results back.

Public entry points (see each module for details):

- ``features.build_features(orders, customers, cutoff)``   -> per-customer feature frame
- ``labels.build_labels(orders, cutoff, horizon_days)``     -> churn labels
- ``bgnbd.fit_bgnbd / BGNBD.prob_no_purchase``              -> BG/NBD baseline
- ``train.train_model(orders, customers, cutoff, horizon_days, config)`` -> TrainedModel
- ``train.evaluate(y, p)``                                  -> metrics dict
- ``promotion.decide_promotion(candidate, champion, tolerance)``
- ``explain.explain / render_reasons / risk_band``
- ``drift.psi / drift_report``
- ``backtest.backtest(orders, cutoff, horizon_days)``, ``read_orders_file``, ``load_cdnow``
- ``score.score_frame(model, features)``                   -> churn_scores rows (probability, band, reasons)
"""

from models.features import FEATURE_COLUMNS, build_features
from models.labels import build_labels
from models.train import TrainConfig, TrainedModel, evaluate, train_model

__all__ = [
    "FEATURE_COLUMNS",
    "build_features",
    "build_labels",
    "TrainConfig",
    "TrainedModel",
    "evaluate",
    "train_model",
]
