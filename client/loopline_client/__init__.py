"""The loopline client: the SDK (`Loopline`) and the `lloop` command for the whole loop against a
loopline server — projects, classes, label maps, uploads, boxes, COCO, datasets, checkpoints and
training, deployments, suggestions, pipelines and jobs.

It talks HTTP and Socket.IO only and imports nothing of the server, so training machines and laptops
install just this distribution (`pip install loopline-client`); TensorFlow is needed only by
`loopline_client.tfdata` (`pip install 'loopline-client[tf]'`).
"""

from loopline_client.errors import (ChecksumMismatch, ConfigError, DatasetBuildFailed, JobFailed, LooplineError,
                                    UnsafeArchive, Unreachable)
from loopline_client.sdk import Loopline, verify_folder

__version__ = "0.1.0"
__all__ = ["ChecksumMismatch", "ConfigError", "DatasetBuildFailed", "JobFailed", "Loopline", "LooplineError",
           "UnsafeArchive", "Unreachable", "verify_folder"]
