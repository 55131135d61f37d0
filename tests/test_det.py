"""Detection transfer on detectron2: our backbones inside detectron2's models and configs."""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from functools import partial
from pathlib import Path

import pytest
import torch
from detectron2 import model_zoo
from detectron2.config import LazyCall as L
from detectron2.config import LazyConfig, get_cfg, instantiate
from detectron2.modeling import ViT, build_model as build_d2_model
from PIL import Image

from pretrain.models import build_model
from transfer.det.backbones import MIMBackbone, add_mim_backbone_config
from transfer.det.configs import BACKBONE_CONFIGS, config_for_backbone
from transfer.det import train as det_train
from transfer.det.data import DatasetNotFoundError
from tool_module import load_tool

ROOT = Path(__file__).resolve().parents[1]


def test_vit_trunk_equals_detectron2_vit_loaded_from_the_same_mae_checkpoint(tmp_path):
    torch.manual_seed(0)
    mae = build_model("mae_vit_tiny")  # 96-d, 2 blocks, 64-px pretraining
    for p in mae.parameters():
        p.data.normal_(0, 0.05)
    ckpt = tmp_path / "mae.pth"
    torch.save({"model": mae.encoder_state_dict()}, ckpt)

    ours = MIMBackbone("mae_vit_tiny", img_size=128, window_size=4, global_blocks=(1,)).eval()
    ours.load_pretrained(str(ckpt))
    ref = ViT(  # detectron2's own ViTDet trunk, same geometry
        img_size=128, patch_size=16, embed_dim=96, depth=2, num_heads=3, drop_path_rate=0.0, window_size=4,
        window_block_indexes=[0], use_rel_pos=True, norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
        pretrain_img_size=64, out_feature="last_feat",
    ).eval()
    encoder = torch.load(ckpt, weights_only=True)["model"]
    result = ref.load_state_dict({k: v for k, v in encoder.items() if k in ref.state_dict()}, strict=False)
    assert all("rel_pos" in k for k in result.missing_keys)  # zero-initialised in both
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        diff = (ours(x)["last_feat"] - ref(x)["last_feat"]).abs().max().item()
    assert diff <= 1e-4, f"max abs difference {diff}"


@pytest.mark.parametrize("name", sorted(BACKBONE_CONFIGS))
def test_every_config_loads_and_builds_its_backbone(name):
    cfg = LazyConfig.load(config_for_backbone(name))
    if "tiny" in name:
        backbone = instantiate(cfg.model.backbone)
    else:  # paper sizes: check the construction arguments without paying for the weights
        with torch.device("meta"):
            backbone = instantiate(cfg.model.backbone)
    trunk = next(m for m in backbone.modules() if isinstance(m, MIMBackbone))
    assert trunk.net.arch == ("convmae" if "convmae" in name else "vit")
    assert backbone.output_shape().keys() == {"p2", "p3", "p4", "p5", "p6"}


IMAGENET_RGB_MEAN, IMAGENET_RGB_STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]


def _r50_yacs_cfg(backbone: str, name: str):
    cfg = add_mim_backbone_config(get_cfg())
    cfg.merge_from_file(model_zoo.get_config_file("COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml"))
    cfg.MODEL.BACKBONE.NAME = backbone
    cfg.MODEL.MIM.NAME, cfg.MODEL.MIM.IMG_SIZE = name, 128
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 3
    return cfg


@pytest.mark.parametrize("backbone, name", [("build_mim_vit_sfp_backbone", "mae_vit_tiny"),
                                            ("build_mim_convmae_fpn_backbone", "convmae_tiny")])
def test_yacs_config_builds_mask_rcnn_with_rgb_imagenet_input(backbone, name):
    """On detectron2's R50 yaml the model feeds RGB images with ImageNet mean/std (what the MIM
    encoders were pretrained on), not the yaml's BGR caffe statistics."""
    cfg = _r50_yacs_cfg(backbone, name)
    model = build_d2_model(cfg).eval()
    assert cfg.INPUT.FORMAT == "RGB" and model.input_format == "RGB"
    assert model.pixel_mean.flatten().tolist() == pytest.approx(IMAGENET_RGB_MEAN)
    assert model.pixel_std.flatten().tolist() == pytest.approx(IMAGENET_RGB_STD)
    with torch.no_grad():
        out = model([{"image": torch.rand(3, 128, 128) * 255}])
    assert out[0]["instances"].image_size == (128, 128)


def test_yacs_config_with_bgr_caffe_normalisation_is_refused():
    cfg = _r50_yacs_cfg("build_mim_vit_sfp_backbone", "mae_vit_tiny")
    cfg.merge_from_list(["INPUT.FORMAT", "BGR", "MODEL.PIXEL_MEAN", [103.53, 116.28, 123.675],
                         "MODEL.PIXEL_STD", [1.0, 1.0, 1.0]])  # what the R50 yaml's defaults hold
    with pytest.raises(ValueError, match="add_mim_backbone_config"):
        build_d2_model(cfg)


def test_model_zoo_lazyconfigs_take_our_backbones_as_drop_in():
    """detectron2's own model-zoo configs interpolate the replaced module's outputs
    (SimpleFeaturePyramid: ``${.net.out_feature}``; FPN: ``${.bottom_up.out_features}``): MIMBackbone
    takes the same arguments as detectron2's ViT and ResNet, so the swap is one line each."""
    vitdet = model_zoo.get_config("common/models/mask_rcnn_vitdet.py").model
    vitdet.backbone.net = L(MIMBackbone)(name="mae_vit_tiny", img_size=128, out_feature="last_feat")
    vitdet.backbone.square_pad = 128
    fpn = model_zoo.get_config("common/models/mask_rcnn_fpn.py").model
    fpn.backbone.bottom_up = L(MIMBackbone)(name="convmae_tiny", img_size=128, out_features=["s0", "s1", "s2", "s3"])
    for cfg, levels in ((vitdet, {"p2", "p3", "p4", "p5", "p6"}), (fpn, {"p2", "p3", "p4", "p5", "p6"})):
        backbone = instantiate(cfg.backbone).eval()
        with torch.no_grad():
            features = backbone(torch.rand(1, 3, 128, 128))
        assert set(features) == levels


def test_mim_backbone_refuses_an_output_it_does_not_have():
    with pytest.raises(ValueError, match="last_feat"):
        MIMBackbone("mae_vit_tiny", out_feature="res5")


def _run_tool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    # PASSIVE: spinning OpenMP threads on busy shared cores made an iteration 15x slower (same numbers)
    env = {**os.environ, "OMP_NUM_THREADS": "2", "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train_det.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=2400)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return proc


@pytest.mark.slow
def test_toy_training_reaches_ap_and_eval_only_reproduces_it(tmp_path):
    # seed 0 at 2 threads: with the earlier 32-channel mask head its mask loss stalled (AP 74.4 / 72.0 here)
    proc = _run_tool("--backbone", "mae_vit_tiny", "--dataset", "toy", "--output", "train", "train.seed=0",
                     cwd=tmp_path)
    # torch's build configuration (detectron2's environment dump) stays in log.txt, off the screen
    assert "PyTorch built with" not in proc.stdout + proc.stderr
    assert "PyTorch built with" in (tmp_path / "train" / "log.txt").read_text()
    trained = json.loads((tmp_path / "train" / "results.json").read_text())
    # the demo gave AP_box 75.8-77.6 / AP_mask 75.2-77.6 over seeds 0-5 x 1 thread and 0-2 x 2 threads
    assert trained["bbox"]["AP"] >= 72 and trained["segm"]["AP"] >= 74, trained
    _run_tool("--backbone", "mae_vit_tiny", "--dataset", "toy", "--output", "eval", "--eval-only",
              "--weights", "train/model_final.pth", cwd=tmp_path)
    evaluated = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert evaluated["bbox"]["AP"] == pytest.approx(trained["bbox"]["AP"], abs=1e-6)
    assert evaluated["segm"]["AP"] == pytest.approx(trained["segm"]["AP"], abs=1e-6)


def test_missing_dataset_is_a_clear_error(tmp_path):
    env = {**os.environ, "DETECTRON2_DATASETS": str(tmp_path / "nowhere")}
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "train_det.py"), "--backbone", "mae_vit_tiny"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "instances_train2017.json" in proc.stderr
    assert "Warning:" not in proc.stderr, proc.stderr[-3000:]  # none of detectron2's (transfer/framework_warnings.py)


# ---- tools/train_det.py: initial weights, overrides, dataset checks --------------------------------
def _write_coco_set(root: Path, boxes: list[list[float]], missing: int = 0) -> str:
    """A COCO-format set of ``len(boxes)`` 64x64 images, one square instance each (polygon mask), the
    last ``missing`` images listed but not written. Returns the --dataset value for it."""
    images, annotations = [], []
    (root / "img").mkdir(parents=True)
    for i, box in enumerate(boxes):
        images.append({"id": i + 1, "file_name": f"{i}.png", "height": 64, "width": 64})
        if i < len(boxes) - missing:
            Image.new("RGB", (64, 64), (i * 20, 90, 160)).save(root / "img" / f"{i}.png")
        polygon = [[10.0, 10.0, 40.0, 10.0, 40.0, 40.0, 10.0, 40.0]]
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "bbox": box, "area": 900.0,
                            "iscrowd": 0, "segmentation": polygon})
    ann = root / f"{root.parent.name}.json"  # the file's stem names the registered dataset: one per test
    ann.write_text(json.dumps({"images": images, "annotations": annotations,
                               "categories": [{"id": 1, "name": "square"}]}))
    return f"{ann}:{root / 'img'}"


@pytest.fixture
def train_det():
    """The command line's parser (the tool); the run itself is reached by import (transfer.det.train)."""
    return load_tool("train_det")


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.fixture
def d2_log():
    handler, logger = _Records(), logging.getLogger("detectron2")
    logger.addHandler(handler)
    yield handler.messages
    logger.removeHandler(handler)


def _setup(train_det, tmp_path, *argv: str):
    dataset = _write_coco_set(tmp_path / "data", [[10.0, 10.0, 30.0, 30.0]] * 2)
    args = train_det.parse_args([*argv[:2], "--dataset", dataset, "--output", str(tmp_path / "out"), *argv[2:]])
    return det_train.setup(args)


def test_paper_row_without_weights_loads_the_checkpoint_its_config_names(train_det, tmp_path, monkeypatch, d2_log):
    asked = []
    local = tmp_path / "cache" / "mae_pretrain_vit_base.pth"

    def resolve(spec):
        asked.append(spec)
        return str(local)

    monkeypatch.setattr(det_train, "resolve_weights", resolve)
    cfg = _setup(train_det, tmp_path, "--backbone", "mae_vit_base")
    assert asked == ["mae_pretrain_vit_base"]
    assert cfg.train.init_checkpoint == str(local)
    assert any(str(local) in m for m in d2_log)  # the log names the file the run starts from


def test_paper_row_whose_checkpoint_cannot_be_fetched_says_where_to_get_it(train_det, tmp_path):
    """ConvMAE's release is a Google Drive file (no direct URL): the run stops before anything else,
    naming the file, where to get it, and --from-scratch."""
    with pytest.raises(FileNotFoundError, match="--from-scratch"):
        _setup(train_det, tmp_path, "--backbone", "convmae_base")


def test_from_scratch_starts_a_paper_row_from_random_init_and_says_so(train_det, tmp_path, monkeypatch, d2_log):
    monkeypatch.setattr(det_train, "resolve_weights", lambda spec: pytest.fail(f"resolved {spec!r}"))
    cfg = _setup(train_det, tmp_path, "--backbone", "convmae_base", "--from-scratch")
    assert cfg.train.init_checkpoint == ""
    assert any("--from-scratch" in m for m in d2_log)


def test_toy_row_trains_from_random_init_without_a_flag(train_det, tmp_path, monkeypatch, d2_log):
    monkeypatch.setattr(det_train, "resolve_weights", lambda spec: pytest.fail(f"resolved {spec!r}"))
    cfg = _setup(train_det, tmp_path, "--backbone", "mae_vit_tiny")
    assert cfg.train.init_checkpoint == ""
    assert any("random initialisation" in m for m in d2_log)


@pytest.mark.parametrize("argv, flag", [
    (["--weights", "mae_pretrain_vit_base", "--from-scratch"], "--from-scratch"),
    (["--eval-only"], "--eval-only"),
])
def test_contradicting_weight_flags_are_refused(train_det, argv, flag, capsys):
    with pytest.raises(SystemExit) as exit_:
        train_det.parse_args(["--backbone", "mae_vit_tiny", *argv])
    assert exit_.value.code == 2 and flag in capsys.readouterr().err


@pytest.mark.parametrize("override, suggested", [("train.max_itr=20", "'max_iter'"), ("modell.backbone.depth=2", "'model'")])
def test_misspelled_override_keys_are_refused_with_the_known_keys(train_det, tmp_path, override, suggested):
    with pytest.raises(ValueError, match=suggested):
        _setup(train_det, tmp_path, "--backbone", "mae_vit_tiny", override)


def test_override_keys_that_are_target_arguments_are_accepted(train_det, tmp_path):
    cfg = _setup(train_det, tmp_path, "--backbone", "mae_vit_tiny", "model.backbone.net.use_act_checkpoint=True",
                 "+train.note=added", "train.max_iter=7")
    assert cfg.model.backbone.net.use_act_checkpoint is True and cfg.train.note == "added"
    assert cfg.train.max_iter == 7


def test_keys_that_detectron2_reads_with_a_default_are_accepted(train_det, tmp_path):
    """default_setup reads train.seed / train.cudnn_benchmark although common/train.py leaves them out."""
    cfg = _setup(train_det, tmp_path, "--backbone", "mae_vit_tiny", "train.seed=3")
    assert cfg.train.seed == 3


@pytest.mark.parametrize("override", ["train.max_iter=0", "dataloader.train.total_batch_size=0", "optimizer.lr=0"])
def test_impossible_values_are_refused_up_front(train_det, tmp_path, override):
    with pytest.raises(ValueError, match=re.escape(override.split("=")[0])):
        _setup(train_det, tmp_path, "--backbone", "mae_vit_tiny", override)


def test_images_missing_on_disk_are_refused_before_training(train_det, tmp_path):
    dataset = _write_coco_set(tmp_path / "data", [[10.0, 10.0, 30.0, 30.0]] * 5, missing=3)
    args = train_det.parse_args(["--backbone", "mae_vit_tiny", "--dataset", dataset, "--output", str(tmp_path / "out")])
    with pytest.raises(DatasetNotFoundError) as err:
        det_train.setup(args)
    assert "4.png" in str(err.value)  # a missing file is named


def test_two_sets_whose_jsons_share_a_name_each_load_their_own_files(tmp_path):
    """--dataset JSON:IMAGES registers custom_<split>_<json stem>: a second set with the same stem in
    the same process must not silently reuse the first one's files."""
    from detectron2.data import DatasetCatalog
    from transfer.det.data import resolve_dataset

    first, second = tmp_path / "a" / "data", tmp_path / "b" / "data"
    for root, n in ((first, 2), (second, 3)):
        written, images = _write_coco_set(root, [[10.0, 10.0, 30.0, 30.0]] * n).split(":")
        (root / "instances.json").write_text(Path(written).read_text())  # the same stem for both sets
        spec = f"{root / 'instances.json'}:{images}"
        splits = resolve_dataset(f"{spec},{spec}", toy_root=tmp_path / "toy")
        records = DatasetCatalog.get(splits.train)
        assert len(records) == n and all(r["file_name"].startswith(str(root)) for r in records)


def test_zero_width_boxes_are_reported_once_with_their_count(train_det, tmp_path, d2_log):
    boxes = [[10.0, 10.0, 0.0, 30.0], [10.0, 10.0, 30.0, 30.0], [12.0, 10.0, 0.0, 30.0]]
    dataset = _write_coco_set(tmp_path / "data", boxes)
    det_train.setup(train_det.parse_args(["--backbone", "mae_vit_tiny", "--dataset", dataset,
                                          "--output", str(tmp_path / "out")]))
    said = [m for m in d2_log if "2 of 3" in m]  # one line, with the count
    assert len(said) == 1
