"""Gallery storage: the store protocol, records and rules (:mod:`.base`), which store a gallery URL
names (:mod:`.urls`), and the backends (:mod:`.sqlite`, :mod:`.postgres`, :mod:`.milvus`, with the
server helpers in :mod:`.remote` and a local PostgreSQL in :mod:`.pg_local`). Storage never runs
inference. The names of :mod:`.base` and :mod:`.urls` are re-exported here (the old path
``facenet_keras.identity.store`` names this package); modules of the package import them from where
they are defined."""

from facenet_keras.identity.stores.base import *  # noqa: F401,F403
from facenet_keras.identity.stores.base import __all__ as _base
from facenet_keras.identity.stores.urls import SCHEMES, default_gallery_path, open_store

__all__ = [*_base, "SCHEMES", "default_gallery_path", "open_store"]
