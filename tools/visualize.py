"""Pictures of what the models do, as PNG files.

    # MAE / ConvMAE reconstructions (rows: masked input / reconstruction + visible patches / original)
    python tools/visualize.py recon --checkpoint output/mae_tiny_toy/checkpoint-00000960.pth --image a.jpg b.jpg --out rec.png
    python tools/visualize.py recon --checkpoint mae_visualize_vit_large.pth --model mae_vit_large --image a.jpg --out rec.png
    # detection predictions of a trained detector (boxes, masks, class names; detectron2's Visualizer)
    python tools/visualize.py det --backbone mae_vit_tiny --weights output/det/toy_vitdet_tiny/model_final.pth --dataset toy \
        --image datasets/toy/coco/val/000000.jpg --out det.png
    # segmentation predictions of a trained segmentor (mmseg's visualizer)
    python tools/visualize.py seg --backbone mae_vit_tiny --weights work_dirs/seg/toy_upernet_vit_tiny/iter_400.pth \
        --image datasets/toy/ade/images/validation/000000.jpg --out seg.png

recon needs a full pretraining checkpoint (with the decoder): an official full release (e.g. MAE's
mae_visualize_vit_large.pth; --model names the architecture unless the file's ``args.model`` does) or a
training checkpoint of tools/train_mim.py (checkpoint-*.pth; its config names the model). Encoder-only
files (mae_pretrain_vit_base.pth, encoder.pth) have no decoder and are refused. SIM predicts features of
another view, not pixels: no reconstructions.
"""
from __future__ import annotations

import argparse
import sys

import torch


# ---- reconstructions (torch only) ---------------------------------------------------------------
def load_pretraining_model(checkpoint: str, model_name: str | None = None) -> torch.nn.Module:
    """The full MAE / ConvMAE model (decoder included) of a pretraining checkpoint."""
    from pretrain.checkpoints import (
        PRETRAINING_KINDS, CheckpointKind, CheckpointMismatchError, expect_kind, load_state_dict_checked, read_checkpoint,
        state_dict_of, to_official,
    )
    from pretrain.encoders import encoder
    from pretrain.models import build_model

    obj = read_checkpoint(checkpoint)  # no code from the file runs; args / config are plain data
    kinds = (CheckpointKind.TRAINING_STATE, *PRETRAINING_KINDS)
    expect_kind(obj, checkpoint, kinds, "a pretraining checkpoint with its decoder (MAE / ConvMAE)")
    state, _ = to_official(state_dict_of(obj, checkpoint))  # Hugging Face's ViTMAEForPreTraining files too
    kwargs = {}
    if "config" in obj:  # ours: tools/train_mim.py training checkpoint
        model_name = model_name or obj["config"]["model"]
        kwargs = dict(obj["config"].get("model_kwargs", {}))
    elif getattr(obj.get("args"), "model", None):  # official training checkpoints: argparse Namespace
        model_name = model_name or obj["args"].model
    if not model_name:
        raise ValueError(f"{checkpoint} does not name its model: pass --model (e.g. mae_vit_large, convmae_base)")
    if encoder(model_name, "model").family == "sim":
        raise ValueError("SIM predicts the features of another view, not pixels: there is no reconstruction to draw")
    if not any(k.startswith("decoder_") for k in state):
        raise CheckpointMismatchError(
            f"{checkpoint} is an encoder-only checkpoint (no decoder_* keys): reconstructions need the decoder. "
            "Use a full pretraining checkpoint (official *_visualize_* / checkpoint-*.pth, or tools/train_mim.py's "
            "checkpoint-*.pth)."
        )
    model = build_model(model_name, **kwargs)
    load_state_dict_checked(model, state, name=checkpoint)
    return model.eval()


def draw_reconstructions(model: torch.nn.Module, images: list[str], out_png: str, mask_ratio: float = 0.75,
                         seed: int = 0, img_size: int | None = None) -> str:
    """Masked / reconstruction / original grid (MAE paper Fig. 2) of ``images`` resized to the model's size."""
    from PIL import Image
    from torchvision import transforms

    from pretrain.data import IMAGENET_MEAN, IMAGENET_STD
    from pretrain.reconstruction_grid import save_reconstruction_grid

    size = img_size or getattr(model, "img_size", None) or model.patch_embed.img_size
    size = tuple(size) if isinstance(size, (tuple, list)) else (size, size)
    tf = transforms.Compose([transforms.Resize(size, interpolation=transforms.InterpolationMode.BICUBIC),
                             transforms.ToTensor(), transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    imgs = torch.stack([tf(Image.open(p).convert("RGB")) for p in images])  # [N, 3, H, W]
    num_tokens = (size[0] // model.patch_size) * (size[1] // model.patch_size)
    noise = torch.rand(len(images), num_tokens, generator=torch.Generator().manual_seed(seed))  # [N, L]
    save_reconstruction_grid(model, imgs, noise, mask_ratio, out_png)
    return out_png


# ---- command line -------------------------------------------------------------------------------
def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="what", required=True)
    r = sub.add_parser("recon", help="MAE / ConvMAE reconstructions")
    r.add_argument("--checkpoint", required=True)
    r.add_argument("--model", help="model name when the checkpoint does not say (pretrain.models names)")
    r.add_argument("--image", nargs="+", required=True)
    r.add_argument("--mask-ratio", type=float, default=0.75)
    r.add_argument("--seed", type=int, default=0, help="seed of the random mask")
    r.add_argument("--img-size", type=int, help="input size (default: the model's pretraining size)")
    for name, framework in (("det", "detectron2"), ("seg", "mmseg")):
        s = sub.add_parser(name, help=f"{framework} predictions")
        s.add_argument("--backbone", help="the config of this backbone name (as tools/train_%s.py)" % name)
        s.add_argument("--config", help="config file (overrides --backbone)")
        s.add_argument("--weights", required=True, help="checkpoint of the trained %s" % ("detector" if name == "det" else "segmentor"))
        s.add_argument("--image", required=True)
    for s in (sub.choices["det"], sub.choices["seg"]):
        s.epilog = "Trailing key=value pairs override the config (detectron2 / mmengine syntax)."
    sub.choices["det"].add_argument("--dataset", default="coco", help="class names (tools/train_det.py --dataset)")
    sub.choices["det"].add_argument("--score-threshold", type=float, default=0.5)
    for s in sub.choices.values():
        s.add_argument("--out", required=True, help="PNG file to write")
    args, extra = p.parse_known_args(argv)
    args.opts = extra  # det / seg: trailing key=value config overrides
    if any("=" not in e for e in extra) or (extra and args.what == "recon"):
        p.error(f"unrecognized arguments: {' '.join(extra)} (config overrides are key=value, det / seg only)")
    if args.what in ("det", "seg") and not (args.backbone or args.config):
        p.error("give --backbone NAME or --config FILE")
    return args


def main(argv=None) -> int:
    from pretrain.checkpoints import CheckpointError

    args = parse_args(argv)
    try:
        return draw(args)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def draw(args: argparse.Namespace) -> int:
    if args.what == "recon":
        model = load_pretraining_model(args.checkpoint, args.model)
        draw_reconstructions(model, args.image, args.out, args.mask_ratio, args.seed, args.img_size)
        print(f"reconstructions (rows: masked / reconstruction / original) -> {args.out}")
    elif args.what == "det":
        from transfer.det.configs import config_for_backbone
        from transfer.det.visualize import draw_detections

        n = draw_detections(args.config or config_for_backbone(args.backbone), args.weights, args.image, args.out,
                            args.dataset, args.score_threshold, args.opts)
        print(f"{n} detections (score >= {args.score_threshold}) -> {args.out}")
    else:
        from mmengine.config import DictAction

        from transfer.seg.train import config_for_backbone
        from transfer.seg.visualize import draw_segmentation

        ns = argparse.Namespace(o=None)
        if args.opts:
            DictAction(option_strings=[], dest="o")(None, ns, args.opts)
        draw_segmentation(args.config or config_for_backbone(args.backbone), args.weights, args.image, args.out, ns.o)
        print(f"segmentation -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
