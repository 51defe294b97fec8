"""WSGI entry for gunicorn: `gunicorn -k gthread -w 1 --threads 32 api.wsgi:app`.

One gunicorn worker process serves HTTP and Socket.IO (threading mode, simple-websocket); scale by
running more such processes behind a load balancer with sticky sessions (the Redis message queue
already joins their events).
"""

from api import create_app

app = create_app()
