"""Measuring the system: metrics in pure numpy (:mod:`.metrics`), protocols on photos (:mod:`.protocols`:
pairs, open-set identification), the embedding cache (:mod:`.embedding_cache`) and plots (:mod:`.plots`).

The metrics are re-exported here, so ``from facenet_keras.evaluation import kfold_accuracy`` keeps
working; importing this package does not import TensorFlow.
"""

from facenet_keras.evaluation.metrics import *  # noqa: F401,F403
from facenet_keras.evaluation.metrics import __all__  # noqa: F401
