"""The classification run's config: every knob of fine-tuning, linear probing, kNN and few-shot
evaluation, typed and validated on the pretraining config's machinery (``pretrain.config.TypedConfig``).

Defaults are the official ``main_finetune.py`` argument defaults (facebookresearch/mae; ConvMAE and SIM
copy them); a paper row (configs/cls/*.py) changes what its published command line changes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pretrain.config import TrainingRunConfig
from pretrain.encoders import encoder
from pretrain.value_rules import Rule, int_from, number, one_of, optional

PROTOCOLS = ("finetune", "linprobe", "knn", "fewshot")
TRAINED = ("finetune", "linprobe")  # the protocols with an optimizer loop (knn / fewshot: frozen features)


@dataclass
class ClsConfig(TrainingRunConfig):
    """Every knob of ``transfer.cls.train.run``."""

    protocol: str = "finetune"  # finetune | linprobe | knn | fewshot
    model: str = "mae_vit_tiny"  # an encoder of pretrain/encoders.py
    weights: str = ""  # the checkpoint a run starts from (official name, path or URL); '' : random init
    allow_partial_weights: bool = False  # accept a pretraining file that leaves trunk parameters at init
    data: str = ""  # ImageNet layout: DATA/train/<class>/*, DATA/val/<class>/*
    subset_list: str = ""  # fewshot: the official 1% list (one '<wnid>_<n>.JPEG' per line)
    input_size: int = 224
    global_pool: bool = True  # average of the patch tokens + fc_norm (MAE fine-tuning); False: class token
    drop_path: float = 0.1
    # optimisation (finetune, linprobe)
    epochs: int = 50
    warmup_epochs: float = 5
    blr: float = 1e-3  # lr = blr * effective batch / 256 unless lr is set
    min_lr: float = 1e-6
    layer_decay: float = 0.75  # finetune: lr scale decay^(depth + 1 - layer id) (BEiT / MAE util/lr_decay.py)
    # augmentation (finetune: timm create_transform as MAE util/datasets.py build_transform)
    color_jitter: float | None = None
    aa: str = "rand-m9-mstd0.5-inc1"  # RandAugment policy ('' : none)
    smoothing: float = 0.1
    reprob: float = 0.25
    remode: str = "pixel"
    recount: int = 1
    mixup: float = 0.0
    cutmix: float = 0.0
    mixup_prob: float = 1.0
    mixup_switch_prob: float = 0.5
    mixup_mode: str = "batch"
    # frozen-feature protocols
    knn_k: int = 20  # DINO eval_knn.py
    knn_temperature: float = 0.07
    lambd: float = 0.1  # fewshot: l2 penalty of the logistic regression (SIM configs/few-shot --lambd)
    # output (output_dir default: output/cls/<row or config name>)
    eval_every_epochs: int = 1  # validation after every N epochs (and after the last)

    KIND: ClassVar[str] = "classification config"
    RULES: ClassVar[dict[str, Rule]] = {
        "protocol": (one_of(*PROTOCOLS), " | ".join(PROTOCOLS)),
        "input_size": (int_from(1), "an integer >= 1 (pixels)"),
        "drop_path": (number(0, 1, high_open=True), "a number in [0, 1)"),
        "layer_decay": (number(0, 1, low_open=True), "a number in (0, 1]"),
        "color_jitter": (optional(number(0)), "a number >= 0, or None"),
        "smoothing": (number(0, 1, high_open=True), "a number in [0, 1)"),
        "reprob": (number(0, 1), "a probability in [0, 1]"),
        "remode": (one_of("pixel", "rand", "const"), "'pixel', 'rand' or 'const'"),
        "recount": (int_from(1), "an integer >= 1"),
        "mixup": (number(0), "a number >= 0 (0: off)"),
        "cutmix": (number(0), "a number >= 0 (0: off)"),
        "mixup_prob": (number(0, 1), "a probability in [0, 1]"),
        "mixup_switch_prob": (number(0, 1), "a probability in [0, 1]"),
        "mixup_mode": (one_of("batch", "pair", "elem"), "'batch', 'pair' or 'elem'"),
        "knn_k": (int_from(1), "an integer >= 1"),
        "knn_temperature": (number(0, low_open=True), "a number > 0"),
        "lambd": (number(0), "a number >= 0"),
        "eval_every_epochs": (int_from(1), "an integer >= 1"),
        "output_dir": (lambda v: isinstance(v, str) and v != "", "a folder path"),
    }

    def problems(self) -> list[str]:
        found = []
        try:
            encoder(self.model, "model")
        except KeyError as e:
            found.append(str(e.args[0]))
        if not self.data:
            found.append("data is empty: pass --data DIR (ImageNet layout: DIR/train/<class>/*, DIR/val/<class>/*)")
        if self.protocol == "fewshot" and not self.subset_list:
            found.append("protocol fewshot needs subset_list=FILE (the official 1% list, e.g. SIM's "
                         "imagenet_subset1/1percent.txt)")
        return found

    @property
    def trained(self) -> bool:
        """True for the protocols that train (finetune, linprobe)."""
        return self.protocol in TRAINED

    @property
    def uses_mixup(self) -> bool:
        return self.protocol == "finetune" and (self.mixup > 0 or self.cutmix > 0)
