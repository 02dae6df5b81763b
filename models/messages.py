"""Operator-facing texts of the churn model's data problems (zh-CN default, en): a backtest
or a training the data cannot support, a bad orders file.

``ModelDataError`` carries its text key: ``str()`` is English (logs, tracebacks),
``localized(lang)`` the operator's language (the command line, run summaries).
"""
from __future__ import annotations

from userops.i18n import join_list, register, t

register(
    {
        # reading an orders file (`userops model backtest --orders`)
        "model.orders.unreadable": {"zh-CN": "{path}：无法读取订单文件：{error}", "en": "{path}: cannot read the orders file: {error}"},
        "model.orders.missing_columns": {
            "zh-CN": "订单缺少列：{columns}（需要 {expected}）",
            "en": "orders are missing columns: {columns} (expected {expected})",
        },
        "model.orders.bad_paid_at": {
            "zh-CN": "paid_at 列有无法识别为时间的值：{error}",
            "en": "paid_at has values that are not dates or times: {error}",
        },
        "model.orders.bad_status": {
            "zh-CN": "未知的订单状态：{values}（应为 {expected} 之一）",
            "en": "unknown order status values: {values} (expected {expected})",
        },
        # the windows of a cutoff
        "model.backtest.no_eval": {
            "zh-CN": "截止 {cutoff} 之前没有任何客户有已支付订单：没有可评估的客户",
            "en": "no customer with a paid order before {cutoff}: nothing to evaluate",
        },
        "model.train.one_class": {
            "zh-CN": "无法训练：训练窗口（特征取 {start}，标签区间 [{start}, {end})）有 {n} 位客户，需要其中既有流失的也有未流失的",
            "en": "cannot train: the training window (features at {start}, labels [{start}, {end})) has {n} customers and needs both classes",
        },
        # warnings printed beside a backtest's figures
        "model.backtest.no_paid": {"zh-CN": "没有已支付的订单", "en": "there are no paid orders"},
        "model.backtest.labels_incomplete": {
            "zh-CN": "数据截至 {last}，在标签区间 [{start}, {end}) 之内结束：流失率被高估",
            "en": "the data ends {last}, inside the label window [{start}, {end}): churn is overstated",
        },
        "model.backtest.no_history": {
            "zh-CN": "训练截止日 {cutoff} 之前没有已支付订单",
            "en": "no paid order before the training cutoff {cutoff}",
        },
    }
)


class ModelDataError(ValueError):
    """The data cannot support this backtest or training (a ValueError, as before).
    ``str()`` is English; ``localized()`` the operator's language."""

    def __init__(self, key: str, **values):
        self.key, self.values = key, values  # a list value is joined in the language's way
        super().__init__(self.localized("en"))

    def localized(self, lang: str | None = None) -> str:
        return t(self.key, lang, **{k: join_list(v, lang) if isinstance(v, list) else v for k, v in self.values.items()})

    def __reduce__(self):  # pickled by Prefect / Dask with its key, not its English text
        return (_rebuild, (self.key, self.values))


def _rebuild(key: str, values: dict) -> ModelDataError:
    return ModelDataError(key, **values)


def localized(exc: BaseException, lang: str | None = None) -> str:
    """An exception's text for the operator: its own language-aware text when it has one."""
    return exc.localized(lang) if isinstance(exc, ModelDataError) else str(exc)
