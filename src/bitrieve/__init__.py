"""bitrieve: deep hashing retrieval research, cross-modal (image <-> text) first.

Data flow (see docs/architecture.md): data -> parts -> methods -> engine -> eval -> index / report.
Sub-packages are imported lazily so that ``import bitrieve`` stays cheap.
"""

__version__ = "0.1.0"
