"""Lifecycle campaigns (awakening, retention, recall, ...): definitions, planning, read-outs.

Plain functions in the modules below; the thin Prefect tasks live in ``tasks.campaigns.steps``.
"""
