"""Where loopline's state lives: settings, the SQLAlchemy catalog and its migrations, blob storage, Redis keys.

Nothing here imports the packages above it (api, workers, models, handlers).
"""
