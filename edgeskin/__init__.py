"""edgeskin: SkinDistilViT skin-lesion classifiers from PyTorch to verified edge artifacts.

Kept import-light on purpose: `import edgeskin` pulls in neither torch nor numpy; the torch
side lives in edgeskin.models / edgeskin.checkpoint / ..., the torch-free side in edgeskin.runtime.
"""

__version__ = "0.1.0"
