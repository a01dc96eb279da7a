"""WSGI entry point: ``gunicorn wsgi:app`` and ``flask --app wsgi ...``."""
from dotenv import load_dotenv

load_dotenv()  # .env in the working directory, if any; real environment variables win

from panel import create_app  # noqa: E402

app = create_app()
