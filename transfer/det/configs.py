"""Which LazyConfig file a ``--backbone`` name selects (one file per paper row under configs/det/), and
the checks a LazyConfig passes before training: override keys that exist, values that can run."""
from __future__ import annotations

import difflib
import inspect

from detectron2.utils.registry import locate
from omegaconf import DictConfig, ListConfig, OmegaConf

from pretrain.value_rules import broken_rules, int_from, number
from transfer.config_table import ConfigTable

DET_CONFIGS = ConfigTable("det")
BACKBONE_CONFIGS = DET_CONFIGS.files
config_for_backbone = DET_CONFIGS.path


# keys read with a default when a config leaves them out: by detectron2's default_setup (seed, cudnn),
# by transfer.det.engine (grad_accum_steps: micro-batches per optimizer step, default 1)
DEFAULT_SETUP_KEYS = {"train.seed", "train.cudnn_benchmark", "train.grad_accum_steps"}


class ConfigValueError(ValueError):
    """A LazyConfig override or value that would be ignored or cannot run."""


def _parse_overrides(overrides: list[str]) -> list[tuple[str, str, bool]]:
    """(override, key, adds a new key on purpose) per override, parsed as LazyConfig.apply_overrides
    parses them (hydra's grammar; ``+key=value`` adds a key)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser
    except ImportError:
        parsed = []
        for o in overrides:
            if "=" not in o:
                raise ConfigValueError(f"override {o!r} is not key=value (e.g. train.max_iter=1000)")
            parsed.append((o, o.split("=", 1)[0], False))
        return parsed
    parsed = OverridesParser.create().parse_overrides(overrides)
    return [(o, p.key_or_group, p.is_add()) for o, p in zip(overrides, parsed)]


def _accepts_argument(node: DictConfig, name: str) -> bool:
    """True if ``node`` is a LazyCall whose target takes ``name`` (or any keyword) as an argument."""
    target = node.get("_target_") if "_target_" in node.keys() else None
    if isinstance(target, str):
        target = locate(target)
    if not callable(target):
        return False
    try:
        params = inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False
    return name in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


def _unknown_key_error(override: str, where: str, part: str, known: list[str]) -> ConfigValueError:
    close = difflib.get_close_matches(part, known, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return ConfigValueError(
        f"override {override!r}: {where} has no key {part!r}.{hint} Known keys of {where}: {', '.join(known)}. "
        "(To add a new key on purpose, write +KEY=VALUE.)"
    )


def _check_key(cfg: DictConfig, override: str, key: str) -> None:
    if key in DEFAULT_SETUP_KEYS:
        return
    node, parts = cfg, key.split(".")
    for i, part in enumerate(parts):
        where = ".".join(parts[:i]) or "the config"
        if isinstance(node, ListConfig):
            if not (part.isdigit() and int(part) < len(node)):
                raise ConfigValueError(
                    f"override {override!r}: {where} is a list of {len(node)}; {part!r} is no index of it")
            if i < len(parts) - 1:
                node = node[int(part)]
            continue
        if not isinstance(node, DictConfig):
            raise ConfigValueError(f"override {override!r}: {where} is a value ({node!r}), not a group of keys")
        known = [str(k) for k in node.keys()]
        if part not in known:
            if i == len(parts) - 1 and _accepts_argument(node, part):
                return  # an argument of the LazyCall's target that the config leaves at its default
            raise _unknown_key_error(override, where, part, known)
        if i < len(parts) - 1:
            node = node[part]


def check_override_keys(cfg: DictConfig, overrides: list[str]) -> None:
    """Refuse overrides of keys the config does not have (``LazyConfig.apply_overrides`` would add them
    silently, so ``train.max_itr=20`` trained the full schedule). Allowed besides existing keys: an
    argument of a LazyCall's target (``model.backbone.net.use_act_checkpoint=True``) and ``+key=value``."""
    for override, key, adds in _parse_overrides(list(overrides)):
        if not adds:
            _check_key(cfg, override, key)


# key -> (test, what is allowed); checked after overrides, before anything is built
_VALUE_RULES = {
    "train.max_iter": (int_from(1), "a positive integer (the number of training iterations)"),
    "train.checkpointer.period": (int_from(1), "a positive integer (iterations between checkpoints)"),
    "train.eval_period": (int_from(0), "an integer >= 0 (iterations between evaluations; 0: evaluate at the end only)"),
    "dataloader.train.total_batch_size": (int_from(1), "a positive integer (images per iteration, all GPUs)"),
    "train.grad_accum_steps": (int_from(1), "a positive integer (micro-batches accumulated per optimizer step)"),
    "optimizer.lr": (number(0, low_open=True), "a number > 0"),
}


def check_train_values(cfg: DictConfig) -> None:
    """Refuse values that cannot train (they used to fail late, e.g. ZeroDivisionError for max_iter=0);
    the rules are ``pretrain.value_rules``'s, as the pretraining config's."""
    values = {key: OmegaConf.select(cfg, key, default=None) for key in _VALUE_RULES}
    bad = broken_rules({k: v for k, v in values.items() if v is not None}, _VALUE_RULES)
    message = " ".join(f"{key}={value!r}: expected {allowed}." for key, value, allowed in bad)
    if message:
        raise ConfigValueError(message)
