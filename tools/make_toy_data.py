"""Write the generated toy data sets used by the tests and the demos.

    python tools/make_toy_data.py --out datasets/toy            # all four
    python tools/make_toy_data.py --out datasets/toy --only coco
    python tools/make_toy_data.py --out datasets/toy --only cls --num-classes 9
    python tools/make_toy_data.py --out datasets/world --world textured --num-images 4000 --only images cls

Layout: OUT/coco (COCO-format instances), OUT/ade (mmseg's ADE20K layout), OUT/images (unlabeled),
OUT/cls (labelled classes in ImageNet's train/<class>/ val/<class>/ layout, plus subset.txt in the
official 1% list format; --num-train / --num-val images split evenly over the classes).

--world textured: the harder world of pretrain/toy_world.py (8 classes of shape x texture, overlapping
colour families, cluttered backgrounds, occlusion, scale and lighting changes), the same four sets: the
unlabeled pool holds --num-images images (OUT/images/world/*.png); OUT/cls has --num-train /
--num-val images per class and the balanced labelled subsets OUT/cls/subset<n>.txt of --subsets.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Callable

from pretrain import toy_world
from pretrain.toy_data import NUM_TOY_CLASSES, write_classification_set
from transfer.toy_datasets import write_ade_toy, write_coco_toy, write_image_folder

SETS = ("coco", "ade", "images", "cls")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="datasets/toy", help="output folder")
    parser.add_argument("--only", nargs="+", choices=SETS, default=SETS, help="write only these sets")
    parser.add_argument("--world", choices=["shapes", "textured"], default="shapes",
                        help="shapes: the 3-shape toy world; textured: pretrain/toy_world.py")
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--num-images", type=int, default=None, help="unlabeled images (default: --num-train)")
    parser.add_argument("--num-classes", type=int, default=3, choices=range(1, NUM_TOY_CLASSES + 1),
                        metavar=f"1..{NUM_TOY_CLASSES}", help="classes of the shapes world's cls set")
    parser.add_argument("--subsets", type=int, nargs="+", default=[32, 64],
                        help="textured world: labelled subset sizes (multiples of its 8 classes)")
    parser.add_argument("--size", type=int, default=None,
                        help="image side (default: 192 coco, 128 ade, 96 images (textured: 64), 64 cls)")
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


SetWriter = tuple[Callable[..., Path], tuple, dict]  # (writer, its arguments after the folder, keywords)
LABELS = {"coco": "COCO-format set", "ade": "ADE-format set", "images": "unlabeled images", "cls": "labelled classes"}


def world_sets(args: argparse.Namespace) -> dict[str, SetWriter]:
    """How each set of ``args.world`` is written; every writer also takes ``seed`` and ``size``."""
    n = (args.num_train, args.num_val)
    count = args.num_images or args.num_train
    if args.world == "textured":  # pretrain/toy_world.py; --num-train / --num-val per class for cls
        scenes = {"scenes": toy_world.render_scene}
        return {"coco": (write_coco_toy, n, {**scenes, "categories": toy_world.CLASS_NAMES}),
                "ade": (write_ade_toy, n, scenes),
                "images": (toy_world.write_pool, (count,), {"size": 64}),
                "cls": (toy_world.write_world_classification, n, {"subsets": tuple(args.subsets), "size": 64})}
    per_class = (max(1, args.num_train // args.num_classes), max(1, args.num_val // args.num_classes))
    return {"coco": (write_coco_toy, n, {}), "ade": (write_ade_toy, n, {}),  # the shapes world, pretrain/toy_data.py
            "images": (write_image_folder, (count,), {}),
            "cls": (write_classification_set, (args.num_classes, *per_class), {"size": 64})}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    size = {} if args.size is None else {"size": args.size}
    sets = world_sets(args)
    for name in [s for s in SETS if s in args.only]:  # in SETS order
        writer, positional, keywords = sets[name]
        path = writer(Path(args.out) / name, *positional, seed=args.seed, **(keywords | size))
        print(f"{LABELS[name]}: {path}")


if __name__ == "__main__":
    main()
