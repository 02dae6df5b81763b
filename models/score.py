"""One call for nightly scoring: probabilities, risk bands and reasons in both languages.

``score_frame(model, features)`` returns one row per customer (index customer_id) with
model_version, probability, risk_band, reason_1..3 codes (+ _sign), the numbers the
sentences use, and reasons_en / reasons_zh_cn texts: what ``churn_scores`` needs apart
from scored_at.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.explain import DEFAULT_BAND_CUTS, render_reasons
from models.train import TrainedModel


def score_frame(
    model: TrainedModel,
    features: pd.DataFrame,
    cuts: tuple[float, float] = DEFAULT_BAND_CUTS,
    languages: tuple[str, ...] = ("en", "zh-CN"),
) -> pd.DataFrame:
    probs = model.predict_proba(features)
    explained = model.explain(features, probs, cuts)
    out = pd.DataFrame(
        {"model_version": model.version, "probability": probs.astype(np.float64)}, index=features.index
    )
    out = out.join(explained)
    for lang in languages:
        out["reasons_" + lang.lower().replace("-", "_")] = render_reasons(explained, lang).to_numpy()
    return out
