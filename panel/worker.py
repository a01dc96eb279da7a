"""The RQ worker class: builds the Flask app once, before forking, so each job starts fast."""
from __future__ import annotations

from rq import Worker


class PanelWorker(Worker):
    """``rq worker -w panel.worker.PanelWorker``: preloads the app in the parent process."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        from .jobs import app

        app()
