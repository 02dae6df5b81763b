"""3C crisis response (issue 7): the steps behind ``flows/crisis.py`` and ``flows/monitor.py``.

Modules (plain functions; the ``@task`` wrappers sit at the bottom of each):
  spike       complaints per SKU: >= N in a window or far above the SKU's usual -> one event per spike
  incidents   open / join incidents (one open incident per SKU), steps, timeline, close
  control     the take-down hook (HTTP POST) or a task for a human, recorded and confirmed
  clarify     the official statement: drafted from a template, approved by a human, published
  compensate  affected customers in priority order, remedies per tier, apologies via messaging
  deadlines   reminders at 50% / 90% of each step's window, escalation when late
  report      the closing report (timeline, compensated per tier, cost, complaint rate)
  feedback    the 24-hour first-response promise and the quality-trace alert
"""
