"""ML models: architectures with their preprocessing specs, the tf.data input pipeline, the training loop,
checks of uploaded Keras files. Nothing here knows Flask, Celery or the catalog.

`models.architectures` and `models.keras_file` import no TensorFlow (the API reads them); the modules
that build and train models (`networks`, `data`, `training`) import it, and are imported only by the
processes that train.
"""
