"""WSGI entry for gunicorn: `gunicorn -k gthread -w 2 --threads 64 api.wsgi:app` (what `loopline serve` runs).

Each process serves HTTP and Socket.IO (threading mode, simple-websocket). Socket.IO is websocket-only,
so processes and replicas need no sticky sessions; the Redis message queue joins their events.
"""

from api import create_app

app = create_app()
