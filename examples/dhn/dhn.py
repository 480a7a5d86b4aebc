"""DHN: H. Zhu, M. Long, J. Wang, Y. Cao. "Deep Hashing Network for Efficient Similarity Retrieval". AAAI 2016.

The walk-through method of docs/compose.md: a supervised image-hashing method in one file (+ its loss,
dhn_loss.py). Defaults: the released script (thulab/DeepHash@a0591d5 examples/dhn/train_val.sh: lr 5e-5, α 10,
q_lambda 0, 64 bits, 2,000 iterations; train_val_script.py: batch 256, momentum 0.9). Not reproduced here (stated
deviations): the released AlexNet's 10x / 20x learning rates on the last layer and its lr x 0.5 every 5,000 steps.
"""

from __future__ import annotations

from typing import Literal

from dhn_loss import dhn_loss
from torch import nn

from bitrieve.methods import register_method
from bitrieve.methods.base import Count, NonNegative, Positive
from bitrieve.methods.families.image import ImageHashing, ImageHashingParams
from bitrieve.parts.standardize import fit_standardization, register_standardization, standardize


class DHNParams(ImageHashingParams):
    backbone: Literal["alexnet", "effnet_lite0", "identity"] = "alexnet"
    # feature mode (not in the paper): z-score each feature with training statistics before the hash layer
    input_norm: Literal["none", "standardize"] = "none"
    alpha: Positive = 10.0  # the scale of the cosine inside the likelihood
    quantization: NonNegative = 0.0  # λ of the quantization term (the released script: 0)
    lr: Positive = 5e-5
    weight_decay: NonNegative = 0.0
    batch_size: Count = 256
    epochs: Count = 10


@register_method("dhn")
class DHN(ImageHashing):
    name = "dhn"
    paper = ("H. Zhu, M. Long, J. Wang, Y. Cao. Deep Hashing Network for Efficient Similarity Retrieval. "
             "AAAI 2016.")
    Params = DHNParams

    def __init__(self, params: DHNParams, bits: int, info):
        super().__init__(params, bits, info)
        self.fc = nn.Linear(self.feature_dim, bits)  # the hash layer on the backbone's features
        register_standardization(self, {"image": self.feature_dim if params.input_norm == "standardize" else 0})

    def prepare(self, train):  # once, with the training split
        if self.params.input_norm == "standardize":
            fit_standardization(self, train.inputs, ["image"])

    def hash_head(self, features):
        return self.fc(standardize(self, "image", features))

    def loss(self, batch):
        return dhn_loss(self.encode_rows(batch["image"]), batch["label"], self.params.alpha, self.params.quantization)

    def stages(self):
        return [self.sgd_stage(self.params.epochs, drop_last=True)]  # a pair loss needs full batches
