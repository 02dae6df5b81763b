"""userops: the user-operations center that runs itself."""
import logging as _logging

# The operator's run-log lines are INFO records of the ``userops.*`` loggers. Prefect hands them
# to a flow run's log (PREFECT_LOGGING_EXTRA_LOGGERS=userops) but leaves the logger's level
# alone, so it inherited the root's WARNING and every INFO line (ingest per table, the crisis
# steps, …) was dropped before reaching the run log in the UI. USEROPS_LOG_LEVEL overrides.
_logger = _logging.getLogger("userops")
if _logger.level == _logging.NOTSET:
    import os as _os

    _logger.setLevel(_os.environ.get("USEROPS_LOG_LEVEL", "INFO").upper())
