"""Vector stores of the frameworks people build retrieval with, over any quanta index.

* :mod:`quanta.integrations.langchain` — ``QuantaVectorStore`` (``pip install quanta[langchain]``)
* :mod:`quanta.integrations.llama_index` — ``QuantaVectorStore`` for LlamaIndex
  (``pip install quanta[llama-index]``)

Each module imports its framework when it is imported; ``import quanta`` imports neither.
"""
