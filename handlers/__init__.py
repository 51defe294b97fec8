"""Pure data code with no Flask, Celery or database: image normalisation, COCO documents, and (later)
the versioned dataset handlers. Everything here takes bytes, arrays and configs and returns results."""
