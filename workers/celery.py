"""Entry module for `celery -A workers ...` (Celery finds `workers.celery.app`)."""

from workers.celery_app import create_celery

app = create_celery()
