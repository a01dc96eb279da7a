# gunicorn reads this file when started in the project folder: the panel's log format and access log, the app
# preloaded in the master (workers share its memory).
from panel.weblog import accesslog, logger_class, preload_app, when_ready  # noqa: F401
