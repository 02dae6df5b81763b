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
        "model.orders.missing_columns": {
            "zh-CN": "订单缺少列：{columns}（需要 {expected}）",
            "en": "orders are missing columns: {columns} (expected {expected})",
        },
        "model.orders.empty": {"zh-CN": "{path}：订单文件是空的，没有可回测的数据", "en": "{path}: the orders file is empty: nothing to backtest"},
        # a .parquet orders file pyarrow cannot read (damaged, cut short, not Parquet): no library text
        "model.orders.parquet_unreadable": {
            "zh-CN": "{path}：无法读取这个 Parquet 文件（文件已损坏、不完整，或并不是 Parquet 格式）。请重新导出或复制该文件，或改用 CSV / .xlsx 订单文件，然后重试",
            "en": "{path}: this Parquet file cannot be read (it is damaged, cut short, or not Parquet at all). Export or copy the file again, or give the orders as a CSV or .xlsx file, then run again",
        },
        "model.orders.no_rows": {"zh-CN": "{path}：订单文件只有表头，没有订单：没有可回测的数据",
                                 "en": "{path}: the orders file has a header but no orders: nothing to backtest"},
        # rows the import would quarantine refuse the file (models/backtest.py OrdersFileRefused)
        "model.orders.refused": {
            "zh-CN": "{path}：{n} 行订单不符合导入规则，未做回测（不在被改动过的数据上给出指标）：",
            "en": "{path}: rows breaking the import rules: {n}; no backtest was run (no figures from altered data):",
        },
        "model.orders.refused_row": {"zh-CN": "  第 {line} 行（订单号 {order_id}）：{reasons}", "en": "  line {line} (order_id {order_id}): {reasons}"},
        "model.orders.refused_rule": {"zh-CN": "{reason}（规则 {rule}）", "en": "{reason} (rule {rule})"},
        "model.orders.reason_sep": {"zh-CN": "；", "en": "; "},
        "model.orders.refused_more": {"zh-CN": "  ……另有 {n} 行", "en": "  … and {n} more"},
        "model.orders.refused_hint": {"zh-CN": "请修正这些行后重试（导入时它们会进入隔离区）",
                                      "en": "fix these rows and run again (an import would quarantine them)"},
        # the windows of a cutoff
        "model.backtest.after_data": {
            "zh-CN": "截止 {cutoff} 在数据之后：最后一笔已支付订单在 {last}。窗口 {horizon} 天时，截止日须不晚于 {latest}（数据结束日减去窗口），{horizon} 天的标签区间才完全落在数据之内",
            "en": "the cutoff {cutoff} is after the data: the last paid order is on {last}. With a {horizon}-day horizon the cutoff must be on or before {latest} "
                  "(the data's end minus the horizon), so that the label window [cutoff, cutoff + {horizon} days) lies inside the data",
        },
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
