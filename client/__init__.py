"""The loopline client: request datasets over REST, wait for their build, download them verified.

Training machines pip-install only this package, so it talks HTTP and Socket.IO and imports nothing
of the server; TensorFlow is needed only by `client.tfdata`.
"""

__all__ = ["ChecksumMismatch", "DatasetBuildFailed", "Loopline", "LooplineError", "UnsafeArchive"]


def __getattr__(name: str):
    """The SDK (and `requests`) is imported on first use: the server's `loopline` command imports
    `client.cli` and should not pay for it on every start."""
    if name in __all__:
        from client import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module 'client' has no attribute {name!r}")
