"""Training and evaluation with detectron2's own machinery (LazyConfig, AMPTrainer/SimpleTrainer, hooks,
DetectionCheckpointer, COCOEvaluator): the loop of detectron2's lazyconfig_train_net, plus the loading
of pretraining checkpoints into the backbone."""
from __future__ import annotations

import logging
from collections import OrderedDict

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, default_writers, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

logger = logging.getLogger("detectron2")


def is_detector_checkpoint(path: str) -> bool:
    """True for a detectron2 checkpoint of a whole detector (keys under backbone./roi_heads./...)."""
    obj = torch.load(path, map_location="cpu", weights_only=False)
    state = obj.get("model", obj) if isinstance(obj, dict) else {}
    return any(k.startswith(("roi_heads.", "proposal_generator.")) for k in state)


def load_weights(model: torch.nn.Module, path: str) -> None:
    """A whole-detector checkpoint goes through DetectionCheckpointer; a pretraining checkpoint (MAE,
    ConvMAE, SIM, official or ours) is mapped into the backbone's encoder with position-embedding
    resizing, and the report of mapped / missing / unexpected keys is logged."""
    if not path:
        return
    if is_detector_checkpoint(path):
        DetectionCheckpointer(model).load(path)
        return
    trunks = [m for m in model.modules() if hasattr(m, "load_pretrained")]
    if not trunks:
        raise TypeError(
            f"{path} is a pretraining checkpoint, but the model has no backbone of this project to load "
            "it into (no module with load_pretrained); pass a detectron2 checkpoint instead"
        )
    report = trunks[0].load_pretrained(path)
    logger.info("Loaded pretraining checkpoint %s into the backbone:\n%s", path, report)


def do_test(cfg, model) -> OrderedDict | dict:
    results = inference_on_dataset(
        model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    )
    if comm.is_main_process():
        print_csv_format(results)
    return results


def do_train(cfg, resume: bool) -> OrderedDict | dict:
    model = instantiate(cfg.model)
    logger.info("Model:\n%s", model)
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    train_loader = instantiate(cfg.dataloader.train)
    model = create_ddp_model(model, **cfg.train.ddp)
    amp = cfg.train.amp.enabled and cfg.train.device.startswith("cuda")
    trainer = (AMPTrainer if amp else SimpleTrainer)(model, train_loader, optimizer)
    checkpointer = DetectionCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    final_results: dict = {}

    def test_and_keep():
        final_results.clear()
        final_results.update(do_test(cfg, model))
        return final_results

    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        hooks.EvalHook(cfg.train.eval_period, test_and_keep),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                             period=cfg.train.log_period) if comm.is_main_process() else None,
    ])
    start_iter = 0
    if resume and checkpointer.has_checkpoint():
        checkpointer.resume_or_load("", resume=True)
        start_iter = trainer.iter + 1  # the checkpoint holds the iteration that just finished
    else:
        load_weights(model, cfg.train.init_checkpoint)
    trainer.train(start_iter, cfg.train.max_iter)
    return final_results


def do_eval_only(cfg) -> OrderedDict | dict:
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    model = create_ddp_model(model)
    if not cfg.train.init_checkpoint:
        raise ValueError("--eval-only needs weights: pass --weights CKPT (a detectron2 checkpoint of the detector)")
    load_weights(model, cfg.train.init_checkpoint)
    return do_test(cfg, model)
