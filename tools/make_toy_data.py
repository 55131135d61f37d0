"""Write the generated toy data sets used by the tests and the demos.

    python tools/make_toy_data.py --out datasets/toy            # all four
    python tools/make_toy_data.py --out datasets/toy --only coco
    python tools/make_toy_data.py --out datasets/toy --only cls --num-classes 9

Layout: OUT/coco (COCO-format instances), OUT/ade (mmseg's ADE20K layout), OUT/images (unlabeled),
OUT/cls (labelled classes in ImageNet's train/<class>/ val/<class>/ layout, plus subset.txt in the
official 1% list format; --num-train / --num-val images split evenly over the classes).
"""
from __future__ import annotations

import argparse
from pathlib import Path


from pretrain.toy_data import NUM_TOY_CLASSES, write_classification_set
from transfer.toy_datasets import write_ade_toy, write_coco_toy, write_image_folder


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="datasets/toy", help="output folder")
    parser.add_argument("--only", choices=["coco", "ade", "images", "cls"], help="write only this set")
    parser.add_argument("--num-train", type=int, default=64)
    parser.add_argument("--num-val", type=int, default=16)
    parser.add_argument("--num-classes", type=int, default=3, choices=range(1, NUM_TOY_CLASSES + 1),
                        metavar=f"1..{NUM_TOY_CLASSES}", help="classes of the cls set (shape x colour pairs)")
    parser.add_argument("--size", type=int, default=None,
                        help="image side (default: 192 coco, 128 ade, 96 images, 64 cls)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    out = Path(args.out)
    size = {} if args.size is None else {"size": args.size}
    if args.only in (None, "coco"):
        path = write_coco_toy(out / "coco", args.num_train, args.num_val, seed=args.seed, **size)
        print(f"COCO-format toy set: {path}")
    if args.only in (None, "ade"):
        path = write_ade_toy(out / "ade", args.num_train, args.num_val, seed=args.seed, **size)
        print(f"ADE-format toy set: {path}")
    if args.only in (None, "images"):
        path = write_image_folder(out / "images", args.num_train, seed=args.seed, **size)
        print(f"unlabeled toy images: {path}")
    if args.only in (None, "cls"):
        per_class = (max(1, args.num_train // args.num_classes), max(1, args.num_val // args.num_classes))
        path = write_classification_set(out / "cls", args.num_classes, *per_class, seed=args.seed,
                                        **({"size": 64} | size))
        print(f"labelled toy classes: {path}")


if __name__ == "__main__":
    main()
