"""A photo library's people: an incremental index of every face under a folder (:mod:`.index`,
stored by :mod:`.store`), clustering of the faces nobody has named (:mod:`.clustering`), naming,
merging and splitting people (:mod:`.people`) and finding every photo of someone (:mod:`.search`).

Named people live in the ordinary gallery (:class:`facenet_keras.identity.gallery.FaceGallery`),
used only through its public methods; the face index lives beside it in its own store.
"""
