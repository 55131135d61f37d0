"""Configs as typed, validated dataclasses, read from plain Python files with ``key=value`` overrides.

    cfg = load_config("configs/pretrain/mae_tiny_toy.py", ["epochs=10", "model_kwargs.norm_pix_loss=True"])
    cfg.validate()          # ConfigError listing every bad value at once
    cfg.epochs, cfg.to_dict()

``TypedConfig`` is the reusable part: defaults are the dataclass fields, a config file's public
variables update them (``_base_ = 'other.py'`` is read first), then the overrides, then keyword
arguments; unknown keys are a KeyError. ``validate`` checks every field against its annotation and the
class's ``RULES`` (``pretrain.value_rules``).
``TrainingRunConfig`` adds the knobs and rules every training run has (the classification tool's
config derives from it too). ``PretrainConfig`` is the pretraining loop's: every knob with a generic
default; paper hyper-parameters live in configs/pretrain/*.py.
"""
from __future__ import annotations

import ast
import dataclasses
import os
import runpy
import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from pretrain.encoders import encoder
from pretrain.value_rules import Rule, broken_rules, int_from, number, one_of, optional, type_rule

C = TypeVar("C", bound="TypedConfig")


class ConfigError(ValueError):
    """A config value no run can use; the message names each key, its value and what is allowed."""


def parse_value(text: str) -> Any:
    """A command-line value: a Python literal when it parses as one, else the string."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def read_config_file(path: str) -> dict:
    """The public variables a Python config file defines; ``_base_ = 'other.py'`` (relative to the
    file) is read first and updated by the file's own variables."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    ns = runpy.run_path(path)
    cfg = {}
    if "_base_" in ns:
        cfg = read_config_file(os.path.join(os.path.dirname(os.path.abspath(path)), ns["_base_"]))
    for key, value in ns.items():
        if not key.startswith("_") and not callable(value) and not isinstance(value, type(os)):
            cfg[key] = value
    return cfg


@dataclass
class TypedConfig:
    """Base of the typed configs: loading (``from_sources``), checking (``validate``), ``to_dict``.
    Subclasses declare fields with defaults, ``RULES`` (key -> rule) and optionally ``problems``."""

    RULES: ClassVar[dict[str, Rule]] = {}
    KIND: ClassVar[str] = "config"  # the error message's "invalid <KIND>"

    @classmethod
    def from_sources(cls: type[C], path: str | None = None, overrides: list[str] | tuple = (), **kwargs) -> C:
        """defaults <- config file <- ``key=value`` overrides (``group.x=1`` sets one entry of a dict
        field) <- ``kwargs``; unknown keys raise KeyError, a malformed override ValueError."""
        defaults = {f.name: f for f in dataclasses.fields(cls)}
        updates = read_config_file(path) if path else {}
        for item in overrides:
            if "=" not in item:
                raise ValueError(f"override {item!r} is not key=value (e.g. epochs=10 or model_kwargs.norm_pix_loss=True)")
            key, value = item.split("=", 1)
            group, _, entry = key.partition(".")
            if entry and group in defaults and isinstance(cls._default(defaults[group]), dict):
                updates[group] = {**updates.get(group, cls._default(defaults[group])), entry: parse_value(value)}
            else:
                updates[key] = parse_value(value)
        updates.update(kwargs)
        unknown = sorted(set(updates) - set(defaults))
        if unknown:
            raise KeyError(f"unknown config keys {unknown}; known keys: {', '.join(sorted(defaults))}")
        return cls(**updates)

    @staticmethod
    def _default(f: dataclasses.Field) -> Any:
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default

    @classmethod
    def rules(cls) -> dict[str, Rule]:
        """Every field's rule: ``RULES`` where given (a subclass's ``RULES`` adds to its bases'), else the one
        its annotation implies."""
        hints = typing.get_type_hints(cls)
        given: dict[str, Rule] = {}
        for klass in reversed(cls.__mro__):
            given.update(vars(klass).get("RULES", {}))
        return {f.name: given.get(f.name) or type_rule(hints[f.name]) for f in dataclasses.fields(cls)}

    def problems(self) -> list[str]:
        """Checks across fields (subclasses); each entry a sentence saying what to change."""
        return []

    def validate(self: C) -> C:
        """``self`` when every value is one a run can use; else a ConfigError listing each bad key with
        its value and what is allowed (e.g. batch_size=0 or epochs=0 would train nothing)."""
        bad = [f"{key}={value!r} (expected {allowed})" for key, value, allowed in broken_rules(self.to_dict(), self.rules())]
        bad += self.problems()
        if bad:
            raise ConfigError(f"invalid {self.KIND}: " + "; ".join(bad))
        return self

    def to_dict(self) -> dict:
        """Plain data (a checkpoint's 'config', config.json)."""
        return dataclasses.asdict(self)

    def replace(self: C, **changes) -> C:
        return dataclasses.replace(self, **changes)


@dataclass
class TrainingRunConfig(TypedConfig):
    """The knobs every training run has with the same default, and the rules of every training run's
    keys (pretraining and classification alike: ``PretrainConfig``, ``transfer.cls.config.ClsConfig``,
    which add the rest, e.g. their own epochs, blr and warmup)."""

    batch_size: int = 64  # per process and micro-batch
    accum_iter: int = 1
    lr: float | None = None  # absolute lr; must be > 0 (lr=0 is refused: it would train nothing)
    weight_decay: float = 0.05
    clip_grad: float | None = None
    # system
    device: str = "auto"  # 'auto', 'cpu', 'cuda'
    dtype: str = "auto"  # 'auto' (bf16 on GPU, fp32 on CPU), 'float32', 'bfloat16', 'float16' (+ GradScaler)
    num_workers: int = 4
    threads: int = 0  # torch CPU threads per process, 0 = torch's default
    seed: int = 0
    # output
    output_dir: str = ""  # '' : the config's loader picks output/<...>/<config name>
    log_interval: int = 10  # iterations between log lines
    keep_last: int = 2  # training checkpoints kept
    tensorboard: bool = True
    progress: bool = True  # progress bar when stderr is a terminal
    max_iters: int = 0  # stop after this many optimizer steps (0: run all epochs); the schedule is unchanged

    RULES: ClassVar[dict[str, Rule]] = {
        "epochs": (int_from(1), "an integer >= 1"),
        "batch_size": (int_from(1), "an integer >= 1 (images per process and micro-batch)"),
        "accum_iter": (int_from(1), "an integer >= 1"),
        "warmup_epochs": (number(0), "a number >= 0"),
        "num_workers": (int_from(0), "an integer >= 0"),
        "threads": (int_from(0), "an integer >= 0 (0: torch's default)"),
        "seed": (int_from(0), "an integer >= 0"),
        "lr": (optional(number(0, low_open=True)), "a number > 0, or None to use blr * effective batch / 256"),
        "blr": (number(0, low_open=True), "a number > 0"),
        "min_lr": (number(0), "a number >= 0"),
        "weight_decay": (number(0), "a number >= 0"),
        "clip_grad": (optional(number(0, low_open=True)), "a number > 0, or None for no clipping"),
        "device": (one_of("auto", "cpu", "cuda"), "'auto', 'cpu' or 'cuda'"),
        "dtype": (one_of("auto", "float32", "bfloat16", "float16"), "'auto', 'float32', 'bfloat16' or 'float16'"),
        "log_interval": (int_from(1), "an integer >= 1 (iterations)"),
        "keep_last": (int_from(0), "an integer >= 0 (0: keep every checkpoint)"),
        "max_iters": (int_from(0), "an integer >= 0 (0: run all epochs)"),
    }


@dataclass
class PretrainConfig(TrainingRunConfig):
    """Every knob of the pretraining loop (``pretrain.engine.train``)."""

    # model
    model: str = "mae_vit_tiny"  # an encoder of pretrain/encoders.py: mae_*, convmae_*, sim_*
    model_kwargs: dict = field(default_factory=dict)  # constructor overrides, e.g. dict(norm_pix_loss=True)
    mask_ratio: float = 0.75  # MAE / ConvMAE
    # data
    data: str = ""  # image folder tree (any depth) or a list file
    img_size: int = 224
    crop_scale: tuple[float, float] = (0.2, 1.0)  # MAE RandomResizedCrop scale
    hflip: float = 0.5
    crop_min: float = 0.08  # SIM RandomResizedCrop scale minimum
    num_mask_patches: int = 118  # SIM block-wise mask size (of 14 x 14 at 224)
    min_mask_patches: int = 16  # SIM: smallest block
    # optimisation
    epochs: int = 800
    warmup_epochs: float = 40
    blr: float = 1.5e-4  # lr = blr * effective batch / 256 unless lr is set
    min_lr: float = 0.0
    betas: tuple[float, float] = (0.9, 0.95)
    no_wd_tokens: bool = True  # no weight decay on cls/mask tokens and pos embeddings (norms, biases never)
    mm: float = 0.995  # SIM EMA momentum, start value
    mm_schedule: str = "cosine"  # SIM: 'cosine' (to 1 at the end) or 'const'
    # system
    compile: bool = False
    grad_checkpointing: bool = False
    find_unused_parameters: bool = False
    # output (output_dir default: output/<config file name>)
    save_interval: int = 0  # iterations between mid-epoch checkpoints (0: only at epoch ends)
    save_every_epochs: int = 1
    vis_every_epochs: int = 20  # MAE/ConvMAE reconstruction grid (0: never)
    vis_num: int = 4
    resume: bool | str = False  # True: latest checkpoint in output_dir; or a checkpoint path
    overwrite: bool = False  # True: delete the run already in output_dir and start again (else it is refused)
    # quality monitor: kNN top-1/top-5 of the encoder on a small labelled folder (train/<class>, val/<class>)
    knn_data: str = ""  # '' : off
    knn_every_epochs: int = 1  # epochs between kNN evaluations (and after the last) when knn_data is set

    KIND: ClassVar[str] = "pretraining config"
    RULES: ClassVar[dict[str, Rule]] = {
        "img_size": (int_from(1), "an integer >= 1 (pixels)"),
        "mask_ratio": (number(0, 1, low_open=True, high_open=True), "a number in (0, 1)"),
        "hflip": (number(0, 1), "a probability in [0, 1]"),
        "crop_min": (number(0, 1, low_open=True), "a number in (0, 1]"),
        "num_mask_patches": (int_from(1), "an integer >= 1"),
        "min_mask_patches": (int_from(1), "an integer >= 1"),
        "mm": (number(0, 1), "a number in [0, 1]"),
        "mm_schedule": (one_of("cosine", "const"), "'cosine' or 'const'"),
        "save_interval": (int_from(0), "an integer >= 0 (0: only at epoch ends)"),
        "save_every_epochs": (int_from(1), "an integer >= 1"),
        "vis_every_epochs": (int_from(0), "an integer >= 0 (0: never)"),
        "vis_num": (int_from(0), "an integer >= 0"),
        "resume": (lambda v: isinstance(v, (bool, str)), "True, False or a checkpoint path"),
        "output_dir": (lambda v: isinstance(v, str) and v != "", "a folder path (load_config sets output/<config name>)"),
        "knn_every_epochs": (int_from(1), "an integer >= 1 (epochs between kNN evaluations)"),
    }

    @property
    def family(self) -> str:
        """'mae', 'convmae' or 'sim': the method (``pretrain.methods``) that trains ``model``."""
        return encoder(self.model, "model").family

    def problems(self) -> list[str]:
        found = []
        try:
            self.family
        except KeyError as e:
            found.append(str(e.args[0]))
        missing = [d for d in ("train", "val") if self.knn_data and not os.path.isdir(os.path.join(self.knn_data, d))]
        if missing:
            found.append(f"knn_data={self.knn_data!r} has no {' or '.join(missing)}/ folder: expected a labelled set "
                         "DIR/train/<class>/*, DIR/val/<class>/* (tools/make_toy_data.py --only cls writes one)")
        if self.resume and self.overwrite:
            found.append("resume and overwrite are both set: resume continues the run in output_dir, overwrite "
                         "deletes it; set one")
        return found


def load_config(path: str | None = None, overrides: list[str] | tuple = (), **kwargs) -> PretrainConfig:
    """``PretrainConfig`` defaults <- config file <- ``key=value`` overrides <- kwargs; ``output_dir``
    defaults to output/<config file name>. Not validated yet: ``validate_config`` (``train`` calls it)."""
    cfg = PretrainConfig.from_sources(path, overrides, **kwargs)
    if not cfg.output_dir:
        cfg.output_dir = os.path.join("output", os.path.splitext(os.path.basename(path))[0] if path else "pretrain")
    return cfg


def validate_config(cfg: PretrainConfig) -> PretrainConfig:
    """``cfg`` unchanged when every value is one a run can use; else a ConfigError listing each bad one."""
    return cfg.validate()
