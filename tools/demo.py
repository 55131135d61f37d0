"""The main job on its embedded default (until the detection tool lands): trains a few iterations of a
shrunk ViTDet Mask R-CNN (detectron2) and a shrunk UperNet (mmsegmentation) on generated toy images on
CPU, printing the losses, then runs one inference of each."""
from __future__ import annotations

import _toolpath  # noqa: F401  (must come first: see tools/_toolpath.py)

import argparse
import time

import torch


def run_detection(iters: int) -> None:
    from detectron2.utils.events import EventStorage

    from transfer.det.smoke import tiny_vitdet_mask_rcnn, toy_instance_sample

    model = tiny_vitdet_mask_rcnn(img_size=128, num_classes=3)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-4)
    batch = [toy_instance_sample(128, seed=s) for s in range(2)]
    model.train()
    for it in range(1, iters + 1):
        with EventStorage(it):
            losses = model(batch)
        total = sum(losses.values())
        opt.zero_grad()
        total.backward()
        opt.step()
        print(f"[det] iter {it}/{iters} total_loss {total.item():.3f} "
              + " ".join(f"{k} {v.item():.3f}" for k, v in losses.items()), flush=True)
    model.eval()
    with torch.no_grad():
        inst = model([{"image": batch[0]["image"]}])[0]["instances"]
    print(f"[det] inference: {len(inst)} detections on a 128x128 toy image")


def run_segmentation(iters: int) -> None:
    from mmengine.optim import OptimWrapper

    from transfer.seg.smoke import build_tiny_upernet, toy_seg_batch

    model = build_tiny_upernet(img_size=64, num_classes=4)
    optim = OptimWrapper(torch.optim.AdamW(model.parameters(), lr=2e-4))
    batch = toy_seg_batch(img_size=64, num_classes=4, batch=2)
    model.train()
    for it in range(1, iters + 1):
        log = model.train_step(batch, optim)
        print(f"[seg] iter {it}/{iters} loss {float(log['loss']):.3f}", flush=True)
    model.eval()
    pred = model.test_step(toy_seg_batch(img_size=64, num_classes=4, batch=1, seed=1))[0]
    print(f"[seg] inference: label map {tuple(pred.pred_sem_seg.data.shape)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iters", type=int, default=5, help="training iterations per model")
    args = parser.parse_args()
    print("Demo: training a tiny Mask R-CNN and a tiny UperNet on generated toy images (CPU, seconds).")
    start = time.time()
    torch.manual_seed(0)
    run_detection(args.iters)
    run_segmentation(args.iters)
    print(f"Demo done in {time.time() - start:.1f} s.")


if __name__ == "__main__":
    main()
