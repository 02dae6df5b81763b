"""Lifecycle campaigns (awakening, retention, recall, ...): definitions, planning, read-outs.

* ``definitions``: the YAML files in ``campaigns/``, validated (file, field, reason).
* ``engine``: one campaign run, set-based, from audience to planned touches.
* ``render``: personalized zh-CN / en messages for a whole audience.
* ``readout``: conversion, uplift with a 95% interval, the communication calendar.

Plain functions; each module's thin Prefect tasks are at its bottom. Delivery is
``tasks.messaging``.
"""
