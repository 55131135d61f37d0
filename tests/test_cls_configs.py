"""configs/cls: every classification config resolves (its ``_base_`` chain, then ClsConfig's defaults for
the rest) to the values of its paper's command line, as written out below (the rows as they stood before
they shared their recipes through ``_base_``: the numbers are the papers', see each file's comment)."""
from __future__ import annotations

from pathlib import Path

import pytest

from transfer.cls.config import ClsConfig

CLS_DIR = Path(__file__).resolve().parents[1] / "configs" / "cls"

_FINETUNE = dict(protocol="finetune", weight_decay=0.05, reprob=0.25, mixup=0.8, cutmix=1.0)
_LINPROBE = dict(protocol="linprobe", drop_path=0.0, warmup_epochs=10, batch_size=512, blr=0.1, min_lr=0.0,
                 weight_decay=0.0)
_TOY = dict(model="mae_vit_tiny", weights="", input_size=64, num_workers=0)
_TOY_TRAINED = dict(_TOY, drop_path=0.0, epochs=12, warmup_epochs=1, batch_size=8, blr=0.002, layer_decay=0.75,
                    aa="", reprob=0.0, log_interval=5)
EXPECTED = {
    "convmae_base_finetune": dict(_FINETUNE, model="convmae_base", weights="convmae_base", drop_path=0.1,
                                  epochs=100, batch_size=128, accum_iter=1, blr=0.0005, layer_decay=0.65),
    "convmae_base_linprobe": dict(_LINPROBE, model="convmae_base", weights="convmae_base", global_pool=True,
                                  epochs=90, accum_iter=1),
    "mae_vit_base_finetune": dict(_FINETUNE, model="mae_vit_base", weights="mae_pretrain_vit_base", drop_path=0.1,
                                  epochs=100, batch_size=32, accum_iter=4, blr=0.0005, layer_decay=0.65),
    "mae_vit_base_linprobe": dict(_LINPROBE, model="mae_vit_base", weights="mae_pretrain_vit_base",
                                  global_pool=False, epochs=90, accum_iter=4),
    "mae_vit_huge_finetune": dict(_FINETUNE, model="mae_vit_huge", weights="mae_pretrain_vit_huge", drop_path=0.3,
                                  epochs=50, batch_size=16, accum_iter=8, blr=0.001, layer_decay=0.75),
    "mae_vit_huge_linprobe": dict(_LINPROBE, model="mae_vit_huge", weights="mae_pretrain_vit_huge",
                                  global_pool=False, epochs=50, accum_iter=4),
    "mae_vit_large_finetune": dict(_FINETUNE, model="mae_vit_large", weights="mae_pretrain_vit_large",
                                   drop_path=0.2, epochs=50, batch_size=32, accum_iter=4, blr=0.001, layer_decay=0.75),
    "mae_vit_large_linprobe": dict(_LINPROBE, model="mae_vit_large", weights="mae_pretrain_vit_large",
                                   global_pool=False, epochs=50, accum_iter=4),
    "sim_vit_base_fewshot": dict(protocol="fewshot", model="sim_vit_base", weights="sim_vit_base", batch_size=128,
                                 lambd=0.1),
    "sim_vit_base_finetune": dict(_FINETUNE, model="sim_vit_base", weights="sim_vit_base", drop_path=0.1,
                                  epochs=100, batch_size=128, accum_iter=1, blr=0.00025, layer_decay=0.65),
    "sim_vit_base_linprobe": dict(_LINPROBE, model="sim_vit_base", weights="sim_vit_base", global_pool=True,
                                  epochs=90, accum_iter=4),
    "toy_cls_fewshot": dict(_TOY, protocol="fewshot", batch_size=16, lambd=0.1),
    "toy_cls_finetune": dict(_TOY_TRAINED, protocol="finetune", weight_decay=0.05),
    "toy_cls_knn": dict(_TOY, protocol="knn", global_pool=False, batch_size=16),
    "toy_cls_linprobe": dict(_TOY_TRAINED, protocol="linprobe", global_pool=False, lr=6.4, min_lr=0.0,
                             weight_decay=0.0),
}


def test_every_config_is_listed():
    assert sorted(p.stem for p in CLS_DIR.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_config_resolves_to_its_rows_values(name):
    resolved = ClsConfig.from_sources(str(CLS_DIR / f"{name}.py"))
    assert resolved.to_dict() == {**ClsConfig().to_dict(), **EXPECTED[name]}
