"""The loopline client: request datasets over REST, wait for their build, download them verified.

Training machines pip-install only this package, so it talks HTTP and Socket.IO and imports nothing
of the server; TensorFlow is needed only by `client.tfdata`.
"""

from client.sdk import ChecksumMismatch, DatasetBuildFailed, Loopline, LooplineError, UnsafeArchive

__all__ = ["ChecksumMismatch", "DatasetBuildFailed", "Loopline", "LooplineError", "UnsafeArchive"]
