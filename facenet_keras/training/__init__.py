"""Training and fine-tuning encoders: triplet losses and mining (:mod:`.losses`), P x K data
(:mod:`.data`), the fitting loop (:mod:`.fit`) and the Siamese binary classifier (:mod:`.siamese`).

Nothing on the inference path imports this package. ``facenet_keras.training.embed`` and the other
names of the former ``facenet_keras.training`` module are re-exported from :mod:`.fit`.
"""

from facenet_keras.training.fit import *  # noqa: F401,F403
from facenet_keras.training.fit import __all__  # noqa: F401
