"""faiss ``contrib`` helpers: :mod:`quanta.faiss.contrib.torch_utils`."""
