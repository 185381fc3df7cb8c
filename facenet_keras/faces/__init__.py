"""Faces in a photo: detection (MTCNN), landmarks (dlib's predictors in numpy), alignment and the
pipeline photo -> faces -> aligned chips -> embeddings. Imports nothing heavy until a module is used."""
