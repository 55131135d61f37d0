"""tools/train_cls.py: every classification paper row runs as written (trunk and batch shrunk for CPU) on a
generated ImageNet-layout set, one training step and one evaluation through the command line; the
evaluation path on oracle models; the official mixup / cutmix targets and transforms; refusals; and
(slow) a toy fine-tuning run that learns, whose checkpoint ``--eval-only`` scores exactly again."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import pretrain.weights

from pretrain.checkpoints import read_checkpoint
from pretrain.encoders import paper_rows
from pretrain.models import build_model
from pretrain.processes import Processes
from pretrain.toy_data import write_classification_set
from pretrain.train_state import checkpoint_paths
from tool_module import load_tool
from transfer.cls.config import ClsConfig
from transfer.cls.data import eval_loader, mixup_fn, train_loader, train_transform
from transfer.cls.setup import build_criterion
from transfer.cls.train import evaluate_model

ROOT = Path(__file__).resolve().parents[1]
CLS_DIR = ROOT / "configs" / "cls"
PAPER_ROWS = {row: file for row, file in paper_rows("cls").items() if not file.startswith("toy_")}
TINY = {"mae": "mae_vit_tiny", "sim": "sim_vit_tiny", "convmae": "convmae_tiny"}  # the trunk shrunk for CPU
CPU = ["input_size=32", "batch_size=2", "num_workers=0", "threads=1", "progress=False", "tensorboard=False"]


@pytest.fixture(scope="module")
def tool():
    return load_tool("train_cls")


@pytest.fixture(scope="module")
def toy(tmp_path_factory) -> Path:
    """3 classes x 8 training / 4 validation images of 32 px, and subset.txt (1 per class)."""
    return write_classification_set(tmp_path_factory.mktemp("cls") / "toy", num_classes=3, per_class_train=8,
                                    per_class_val=4, size=32, seed=0)


def test_the_table_lists_every_paper_row():
    assert set(PAPER_ROWS) == {f"{e}_{p}" for e in ("mae_vit_base", "mae_vit_large", "mae_vit_huge", "convmae_base",
                                                     "sim_vit_base") for p in ("finetune", "linprobe")} | {
        "sim_vit_base_fewshot"}
    assert all((CLS_DIR / file).is_file() for file in paper_rows("cls").values())


@pytest.mark.parametrize("row", sorted(PAPER_ROWS))
def test_paper_row_runs_as_written(row, tool, toy, tmp_path, one_thread):
    """The row's config with only the trunk (its tiny sibling), input size, per-process batch and run
    length shrunk: one optimizer step (accum_iter as written) and one evaluation through the CLI."""
    path = CLS_DIR / PAPER_ROWS[row]
    written = ClsConfig.from_sources(str(path))
    tiny = TINY[row.split("_")[0]]
    extra = [f"subset_list={toy / 'subset.txt'}"] if written.protocol == "fewshot" else []
    out = tmp_path / "run"
    results = tool.main(["--config", str(path), "--backbone", tiny, "--data", str(toy), "--output", str(out),
                         "--from-scratch", "max_iters=1", *CPU, *extra])
    on_disk = json.loads((out / "results.json").read_text())
    assert on_disk == results and 0 <= results["acc1"] <= results["acc5"] <= 100
    assert (results["protocol"], results["backbone"], results["n_val"]) == (written.protocol, tiny, 12)
    assert results["n_train"] == (3 if written.protocol == "fewshot" else 24)
    if written.trained:  # the checkpoint's config is the row's, but for what the test shrank
        config = read_checkpoint(checkpoint_paths(str(out))[-1])["config"]
        shrunk = {"model", "input_size", "batch_size", "num_workers", "threads", "progress", "tensorboard",
                  "max_iters", "weights", "data", "output_dir"}
        assert {k: v for k, v in config.items() if k not in shrunk} == \
            {k: v for k, v in written.to_dict().items() if k not in shrunk}
        records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        assert records[0]["iteration"] == 1 and "val_acc1" in records[-1]


# ------------------------------------------------------------------------------------------ evaluation
class LabelImages(torch.utils.data.Dataset):
    """Images whose pixels hold their label (the oracle models read it back)."""

    def __init__(self, labels: list[int]):
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return torch.full((3, 4, 4), float(self.labels[i])), self.labels[i]


class RankedOracle(nn.Module):
    """Logits that rank the true class at place ``rank`` (1 = top)."""

    def __init__(self, num_classes: int, rank: int):
        super().__init__()
        self.num_classes, self.rank = num_classes, rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        label = x[:, 0, 0, 0].long()
        order = (torch.arange(self.num_classes) - label[:, None]) % self.num_classes  # true class: 0
        return -((order + self.rank - 1) % self.num_classes).float()  # the true class: place rank - 1 from the top


@pytest.mark.parametrize("rank, acc1, acc5", [(1, 100.0, 100.0), (2, 0.0, 100.0), (5, 0.0, 100.0), (6, 0.0, 0.0)])
def test_evaluation_of_oracle_models(rank, acc1, acc5):
    labels = [i % 10 for i in range(37)]  # 37: the last batch is incomplete
    cfg = ClsConfig(batch_size=8, num_workers=0)
    procs = Processes(False, 0, 1, 0, torch.device("cpu"))
    metrics = evaluate_model(RankedOracle(10, rank), LabelImages(labels), cfg, procs, nullcontext())
    assert (metrics["acc1"], metrics["acc5"]) == (acc1, acc5)


def test_distributed_evaluation_scores_every_image_once():
    cfg = ClsConfig(batch_size=4, num_workers=0)
    data = LabelImages(list(range(11)))
    seen = [int(label) for rank in range(3) for _, labels in eval_loader(data, cfg, rank, 3) for label in labels]
    assert sorted(seen) == list(range(11))


# ------------------------------------------------------------------------------------------ recipe pieces
def official_mixup(x: torch.Tensor, target: torch.Tensor, num_classes: int, mixup_alpha: float = 0.8,
                   cutmix_alpha: float = 1.0, switch_prob: float = 0.5, smoothing: float = 0.1):
    """timm 0.3.2's Mixup (what facebookresearch/mae main_finetune.py runs), mode 'batch', prob 1,
    correct_lam: the draws in its order from numpy's global RNG, the batch mixed with its flip."""
    lam, use_cutmix = 1.0, False
    if np.random.rand() < 1.0:  # mix_prob
        use_cutmix = np.random.rand() < switch_prob
        lam = float(np.random.beta(cutmix_alpha, cutmix_alpha) if use_cutmix else np.random.beta(mixup_alpha, mixup_alpha))
    x = x.clone()
    if use_cutmix:
        h, w = x.shape[-2:]
        ratio = np.sqrt(1 - lam)
        cut_h, cut_w = int(h * ratio), int(w * ratio)
        cy, cx = np.random.randint(0, h), np.random.randint(0, w)
        yl, yh = np.clip(cy - cut_h // 2, 0, h), np.clip(cy + cut_h // 2, 0, h)
        xl, xh = np.clip(cx - cut_w // 2, 0, w), np.clip(cx + cut_w // 2, 0, w)
        lam = 1.0 - (yh - yl) * (xh - xl) / float(h * w)
        x[:, :, yl:yh, xl:xh] = x.flip(0)[:, :, yl:yh, xl:xh]
    else:
        x = x * lam + x.flip(0) * (1 - lam)
    off = smoothing / num_classes
    one_hot = F.one_hot(target, num_classes).float() * (1 - smoothing) + off
    return x, one_hot * lam + one_hot.flip(0) * (1 - lam)


@pytest.mark.parametrize("seed", range(6))  # both branches (mixup, cutmix) occur among these seeds
def test_mixup_and_cutmix_equal_the_official(seed):
    cfg = ClsConfig.from_sources(str(CLS_DIR / "mae_vit_base_finetune.py"))
    x, target = torch.randn(6, 3, 16, 16), torch.tensor([0, 1, 2, 3, 4, 0])
    np.random.seed(seed)
    ours = mixup_fn(cfg, 5)(x.clone(), target)
    np.random.seed(seed)
    official = official_mixup(x, target, 5)
    torch.testing.assert_close(ours[0], official[0])
    torch.testing.assert_close(ours[1], official[1])


def test_finetune_transform_is_the_official_pipeline():
    """mae util/datasets.py build_transform (timm create_transform, is_training): random resized crop
    (0.08-1, bicubic), flip 0.5, RandAugment m9 mstd0.5 inc1, normalise, random erasing 0.25 pixel x1."""
    from timm.data.auto_augment import RandAugment
    from timm.data.random_erasing import RandomErasing
    from timm.data.transforms import RandomResizedCropAndInterpolation

    cfg = ClsConfig.from_sources(str(CLS_DIR / "mae_vit_base_finetune.py"))
    steps = train_transform(cfg).transforms
    crop = next(t for t in steps if isinstance(t, RandomResizedCropAndInterpolation))
    assert (crop.size, crop.scale, str(crop.interpolation)) == ((224, 224), (0.08, 1.0), "InterpolationMode.BICUBIC")
    rand = next(t for t in steps if isinstance(t, RandAugment))
    assert (rand.num_layers, len(rand.ops), rand.ops[0].magnitude, rand.ops[0].magnitude_std) == (2, 15, 9, 0.5)
    erase = next(t for t in steps if isinstance(t, RandomErasing))
    assert (erase.probability, erase.mode, erase.max_count) == (0.25, "pixel", 1)
    assert not any(type(t).__name__ == "ColorJitter" for t in steps)  # color_jitter None under RandAugment


# ------------------------------------------------------------------------------------------ refusals
def test_refusals(tool, toy, tmp_path):
    base = ["--backbone", "mae_vit_tiny", "--protocol", "knn", "--output", str(tmp_path / "out"), *CPU]
    with pytest.raises(SystemExit) as exit_:  # a val/ class that train/ lacks
        broken = tmp_path / "broken"
        shutil.copytree(toy, broken)
        (broken / "val" / "n99-extra").mkdir()
        shutil.copy(next((toy / "val" / "n00-square-red").iterdir()), broken / "val" / "n99-extra" / "x.JPEG")
        tool.main([*base, "--data", str(broken)])
    assert exit_.value.code != 0 and "n99-extra" in str(exit_.value.code)
    with pytest.raises(SystemExit) as exit_:  # no such data folder
        tool.main([*base, "--data", str(tmp_path / "missing")])
    assert exit_.value.code != 0 and isinstance(exit_.value.code, str)
    for bad in (["no_such_key=1"], ["batch_size"], ["--config", str(tmp_path / "none.py")]):  # usage errors
        with pytest.raises(SystemExit) as exit_:
            tool.main([*base, "--data", str(toy), *bad])
        assert exit_.value.code == 2
    with pytest.raises(SystemExit) as exit_:  # a value no run can use
        tool.main([*base, "--data", str(toy), "batch_size=0"])
    assert exit_.value.code != 0 and "batch_size" in str(exit_.value.code)
    pretraining = tmp_path / "mae_tiny_pretrain.pth"  # not a classifier: --eval-only refuses to score it
    torch.save({"model": build_model("mae_vit_tiny").state_dict()}, pretraining)
    with pytest.raises(SystemExit) as exit_:
        tool.main([*base[:3], "finetune", *base[4:], "--data", str(toy), "--eval-only", "--weights", str(pretraining)])
    assert exit_.value.code != 0 and isinstance(exit_.value.code, str)
    for flags in (["--weights", "x.pth", "--from-scratch"], ["--eval-only", "--overwrite"]):
        with pytest.raises(SystemExit) as exit_:
            tool.main([*base, "--data", str(toy), *flags])
        assert exit_.value.code == 2
    assert not (tmp_path / "out" / "results.json").exists()


# ------------------------------------------------------------------------------------------ toy run
@pytest.mark.slow
def test_toy_finetuning_learns_and_eval_only_reproduces_it(tool, tmp_path, one_thread, monkeypatch):
    """configs/cls/toy_cls_finetune.py from random init on 3 toy classes (48 / 24 images): measured 91.7 %
    top-1 (chance 33 %); --eval-only on its output folder, or on its weights saved as the official
    fine-tuned files are ({'model': ...}, loaded strictly; also under an official name), gives the same
    numbers; a run stopped after 30
    iterations and resumed ends with the same weights as the uninterrupted one."""
    data = write_classification_set(tmp_path / "toy", num_classes=3, per_class_train=16, per_class_val=8, size=64)
    common = ["--backbone", "mae_vit_tiny", "--protocol", "finetune", "--data", str(data), "threads=1",
              "progress=False", "tensorboard=False"]
    trained = tool.main([*common, "--output", str(tmp_path / "run")])
    assert trained["acc1"] >= 80.0
    again = tool.main([*common, "--output", str(tmp_path / "run"), "--eval-only"])
    assert again["weights"] == checkpoint_paths(str(tmp_path / "run"))[-1]  # what was scored, in results.json
    assert {k: again[k] for k in ("acc1", "acc5", "loss")} == {k: trained[k] for k in ("acc1", "acc5", "loss")}
    with pytest.raises(SystemExit):  # the folder holds a run: refused without --resume / --overwrite
        tool.main([*common, "--output", str(tmp_path / "run")])
    released = tmp_path / "finetuned.pth"  # the layout of the official fine-tuned files: {'model': state dict}
    torch.save({"model": read_checkpoint(checkpoint_paths(str(tmp_path / "run"))[-1])["model"]}, released)
    named = tool.main([*common, "--output", str(tmp_path / "eval"), "--eval-only", "--weights", str(released)])
    assert (named["acc1"], named["loss"]) == (trained["acc1"], trained["loss"])
    # an official name resolves (download stubbed: no network here) and loads the same way
    monkeypatch.setattr(pretrain.weights, "fetch_official", lambda entry, cache_dir=None: str(released))
    by_name = tool.main([*common, "--output", str(tmp_path / "eval"), "--eval-only", "--weights", "mae_finetuned_vit_base"])
    assert (by_name["acc1"], by_name["weights"]) == (trained["acc1"], "mae_finetuned_vit_base")
    tool.main([*common, "--output", str(tmp_path / "split"), "max_iters=30"])
    resumed = tool.main([*common, "--output", str(tmp_path / "split"), "--resume"])
    assert resumed["loss"] == trained["loss"]
    final = [read_checkpoint(checkpoint_paths(str(tmp_path / d))[-1])["model"] for d in ("run", "split")]
    assert all(torch.equal(final[0][k], final[1][k]) for k in final[0])


def test_two_processes_gloo(toy, tmp_path):
    """torchrun with 2 CPU processes (gloo): DDP training, the evaluation shared between them, one
    results.json; the processes end with identical parameters (checked and logged by the run)."""
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(_free_port()),
           str(ROOT / "tools" / "train_cls.py"), "--backbone", "mae_vit_tiny", "--protocol", "finetune", "--data",
           str(toy), "--output", str(out), "--from-scratch", "epochs=1", "accum_iter=2", *CPU]
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["n_val"] == 12 and 0 <= results["acc1"] <= 100
    assert "identical on all 2 processes" in done.stdout
    records = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in records if "loss" in r] == [3]  # 24 images / (2 x 2 x 2) per step
    assert records[-1]["iteration"] == 3 and "val_acc1" in records[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("protocol", ["finetune", "linprobe"])
def test_pretraining_file_initialises_the_trunk(protocol, tool, toy, tmp_path, one_thread):
    """--weights PRETRAINING_FILE: the trunk takes the file's encoder, the head is new (main_finetune.py:
    trunc-normal 2e-5; main_linprobe.py: BN + trunc-normal 0.01 head); the linear probe leaves the trunk
    frozen. One step: the first step's lr is 0 (warmup), so the fine-tuned weights are still the initial ones."""
    torch.manual_seed(0)
    encoder = build_model("mae_vit_tiny").state_dict()
    weights = tmp_path / "encoder.pth"
    torch.save({"model": encoder}, weights)
    out = tmp_path / protocol
    tool.main(["--backbone", "mae_vit_tiny", "--protocol", protocol, "--data", str(toy), "--output", str(out),
               "--weights", str(weights), "max_iters=2" if protocol == "linprobe" else "max_iters=1", *CPU])
    model = read_checkpoint(checkpoint_paths(str(out))[-1])["model"]
    for key in ("cls_token", "patch_embed.proj.weight", "blocks.1.mlp.fc2.weight", "blocks.0.norm1.bias"):
        assert torch.equal(model[key], encoder[key]), key
    head = model["head.weight"] if protocol == "finetune" else model["head.1.weight"]
    assert head.std() < (1e-4 if protocol == "finetune" else 0.02)
    if protocol == "linprobe":  # the BatchNorm head without affine parameters, its statistics updated
        assert "head.0.weight" not in model and model["head.0.num_batches_tracked"] == 2


def test_weights_precedence(tool):
    """A row's config names its paper checkpoint; kNN (no row) takes the encoder's; --weights and key=value
    replace it, --from-scratch drops it; --eval-only scores a trained classifier, never the pretraining file."""
    def weights(*argv: str) -> str:
        return tool.build_config(tool.parse_args([*argv, "--data", "d"])).weights

    row, knn = ["--backbone", "mae_vit_base", "--protocol", "finetune"], ["--backbone", "mae_vit_base", "--protocol", "knn"]
    assert weights(*row) == weights(*knn) == "mae_pretrain_vit_base"
    assert weights(*knn, "weights=mine.pth") == weights(*row, "--weights", "mine.pth") == "mine.pth"
    assert weights(*row, "--from-scratch") == weights(*row, "--eval-only") == ""
    assert weights(*row, "--eval-only", "--weights", "mae_finetuned_vit_base") == "mae_finetuned_vit_base"


def test_processes_and_accumulation_see_the_same_images_per_step():
    """N processes x accum_iter A take, at every optimizer step, the images 1 process x accum_iter N x A
    takes (DistributedSampler interleaves ranks): the data of a step does not depend on the GPU count."""
    data = LabelImages(list(range(50)))

    def steps(world: int, accum: int) -> list[set[int]]:
        cfg = ClsConfig(batch_size=3, accum_iter=accum, num_workers=0, seed=1)
        per_rank = [[labels.tolist() for _, labels in train_loader(data, cfg, rank, world, epoch=2)]
                    for rank in range(world)]
        count = min(len(batches) for batches in per_rank) // accum
        return [{i for batches in per_rank for b in batches[s * accum:(s + 1) * accum] for i in b} for s in range(count)]

    assert steps(2, 2) == steps(1, 4) == steps(4, 1)
    assert len(steps(1, 4)) == 4 and all(len(images) == 12 for images in steps(1, 4))


def test_losses_equal_the_official_formulas():
    """main_finetune.py's criterion: timm 0.3.2 SoftTargetCrossEntropy under mixup, else
    LabelSmoothingCrossEntropy(0.1); main_linprobe.py: plain cross-entropy (re-expressed here)."""
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    soft = torch.softmax(torch.randn(6, 5), -1)
    logp = F.log_softmax(logits, -1)
    row = ClsConfig.from_sources(str(CLS_DIR / "mae_vit_base_finetune.py"))
    torch.testing.assert_close(build_criterion(row)(logits, soft), (-soft * logp).sum(-1).mean())
    no_mix = row.replace(mixup=0.0, cutmix=0.0)
    smoothed = 0.9 * -logp.gather(1, labels[:, None]).squeeze(1) + 0.1 * -logp.mean(-1)
    torch.testing.assert_close(build_criterion(no_mix)(logits, labels), smoothed.mean())
    probe = ClsConfig.from_sources(str(CLS_DIR / "mae_vit_base_linprobe.py"))
    torch.testing.assert_close(build_criterion(probe)(logits, labels), F.nll_loss(logp, labels))


def test_partial_pretraining_file_is_refused_unless_allowed(tool, toy, tmp_path, one_thread):
    """A pretraining file that leaves trunk blocks at init (here: its second block removed) is an error that
    names --allow-partial-weights; with the flag the run goes on from the partially loaded trunk."""
    state = {k: v for k, v in build_model("mae_vit_tiny").state_dict().items() if not k.startswith("blocks.1.")}
    partial = tmp_path / "partial.pth"
    torch.save({"model": state}, partial)
    argv = ["--backbone", "mae_vit_tiny", "--protocol", "knn", "--data", str(toy), "--weights", str(partial), *CPU]
    with pytest.raises(SystemExit) as exit_:
        tool.main([*argv, "--output", str(tmp_path / "refused")])
    assert "--allow-partial-weights" in str(exit_.value.code)
    results = tool.main([*argv, "--output", str(tmp_path / "allowed"), "--allow-partial-weights"])
    assert results["weights"] == str(partial)
