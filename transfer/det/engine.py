"""Training and evaluation with detectron2's own machinery (LazyConfig, AMPTrainer/SimpleTrainer, hooks,
DetectionCheckpointer, COCOEvaluator): the loop of detectron2's lazyconfig_train_net; ``--weights`` files are
loaded by ``transfer.det.weights.load_weights``. The trainer and the training loader come from
``transfer.det.distributed``: gradient accumulation (``train.grad_accum_steps``) and augmentation and
sampling seeded per draw, so N processes equal one process accumulating N micro-batches."""
from __future__ import annotations

import logging
from collections import OrderedDict

from detectron2.config import instantiate
from detectron2.engine import default_writers, hooks
from detectron2.engine.defaults import create_ddp_model
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm

from transfer.det.checkpointer import AtomicDetectionCheckpointer
from transfer.det.distributed import (
    AccumulatingAMPTrainer, AccumulatingTrainer, build_train_loader, run_seed,
)
from transfer.det.weights import load_weights
from transfer.rank_agreement import check_ranks_agree

logger = logging.getLogger("detectron2")


def do_test(cfg, model) -> OrderedDict | dict:
    results = inference_on_dataset(
        model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator)
    )
    if comm.is_main_process():
        print_csv_format(results)
    return results


class EvalHookUnlessFailed(hooks.EvalHook):
    """detectron2's EvalHook, except that the evaluation at the end of training runs only when every
    iteration finished: a run that fails in training stops with its error at once, instead of first
    evaluating the model it has (detectron2 evaluates after a failure in the last iteration)."""

    def before_train(self):
        self._last_finished = self.trainer.start_iter - 1

    def after_step(self):
        self._last_finished = self.trainer.iter
        super().after_step()

    def after_train(self):
        if self._last_finished + 1 >= self.trainer.max_iter:
            super().after_train()
        else:
            del self._func  # what detectron2's after_train also drops: a closure holding the trainer


def ddp_model(model, device: str, **ddp):
    """detectron2's create_ddp_model; a model on the CPU (gloo) gets no device_ids (DDP refuses them)."""
    if not device.startswith("cuda"):
        ddp["device_ids"] = None
    if ddp.get("fp16_compression") and comm.get_world_size() > 1:
        logger.info("Gradients are all-reduced in fp16 (train.ddp.fp16_compression=True, the ViTDet recipe): the "
                    "result differs from one process by that rounding; train.ddp.fp16_compression=False for none")
    return create_ddp_model(model, **ddp)


def do_train(cfg, resume: bool) -> OrderedDict | dict:
    model = instantiate(cfg.model)
    logger.info("Model:\n%s", model)
    model.to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    seed, accum = run_seed(cfg), cfg.train.get("grad_accum_steps", 1)
    train_loader, sampler = build_train_loader(cfg, seed, accum)
    model = ddp_model(model, cfg.train.device, **cfg.train.ddp)
    amp = cfg.train.amp.enabled and cfg.train.device.startswith("cuda")
    trainer = (AccumulatingAMPTrainer if amp else AccumulatingTrainer)(
        model, train_loader, optimizer, grad_accum_steps=accum, seed=seed)
    checkpointer = AtomicDetectionCheckpointer(model, cfg.train.output_dir, trainer=trainer)  # never half-written
    final_results: dict = {}

    def test_and_keep():
        final_results.clear()
        final_results.update(do_test(cfg, model))
        return final_results

    trainer.register_hooks([
        hooks.IterationTimer(),
        hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
        hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
        EvalHookUnlessFailed(cfg.train.eval_period, test_and_keep),
        hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter),
                             period=cfg.train.log_period) if comm.is_main_process() else None,
    ])
    start_iter = 0
    if resume and checkpointer.has_checkpoint():
        checkpointer.resume_or_load("", resume=True)
        start_iter = trainer.iter + 1  # the checkpoint holds the iteration that just finished
    else:
        load_weights(model, cfg.train.init_checkpoint, cfg.train.get("allow_partial_weights", False))
    sampler.first_chunk = start_iter * accum  # a resumed run goes on with the draws it had not trained on
    trainer.train(start_iter, cfg.train.max_iter)
    check_ranks_agree(model, logger.info)
    return final_results


def do_eval_only(cfg) -> OrderedDict | dict:
    model = instantiate(cfg.model)
    model.to(cfg.train.device)
    model = ddp_model(model, cfg.train.device)
    if not cfg.train.init_checkpoint:
        raise ValueError("--eval-only needs weights: pass --weights CKPT (a detectron2 checkpoint of the detector)")
    load_weights(model, cfg.train.init_checkpoint, cfg.train.get("allow_partial_weights", False), detector_only=True)
    return do_test(cfg, model)
