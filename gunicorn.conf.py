# gunicorn reads this file when started in the project folder: the panel's log format and access log.
from panel.weblog import accesslog, logger_class  # noqa: F401
