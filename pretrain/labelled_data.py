"""Labelled image folders for classification (fine-tuning, linear probing, kNN, few-shot).

Layout: ImageNet's ``DATA/train/<class>/*`` and ``DATA/val/<class>/*`` (any image-folder tree of that
shape: class folder names and image extensions are free). The classes are the folders of ``train/``,
sorted (torchvision ImageFolder's order); ``val/`` uses the same indices and may lack classes, but a
``val/`` class absent from ``train/`` is an error (``UnknownClassError``).

A training subset is chosen by a list file in the official 1% format (the ``imagenet_subset1/
1percent.txt`` of SimCLR, MSN and OpenGVLab/Siamese-Image-Modeling main_logistic.py): one file name
``<class>_<n>.JPEG`` per line, read as ``train/<class>/<file name>`` where ``<class>`` is the text
before the first '_'.
"""
from __future__ import annotations

import os
from typing import Callable

import torchvision.datasets as tvd
from PIL import Image

SPLITS = ("train", "val")
LAYOUT = "DATA/train/<class>/<image> and DATA/val/<class>/<image> (ImageNet's folder layout)"


class UnknownClassError(ValueError):
    """A class named by ``val/`` or by a subset list is not a folder of ``train/``."""


class UnreadableImageError(OSError):
    """An image file of a labelled folder could not be decoded."""


def load_rgb(path: str) -> Image.Image:
    """A PIL RGB image (ImageFolder's loader) or ``UnreadableImageError`` naming the file."""
    try:
        with open(path, "rb") as f:
            img = Image.open(f)
            return img.convert("RGB")
    except OSError as exc:  # PIL's UnidentifiedImageError and truncated files are OSErrors
        raise UnreadableImageError(
            f"cannot read image {path} ({type(exc).__name__}: {exc}); remove or replace the file"
        ) from exc


def split_dir(data_dir: str | os.PathLike, split: str) -> str:
    """``data_dir/split``, or FileNotFoundError saying which layout is expected."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    path = os.path.join(os.fspath(data_dir), split)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"no folder {path!r}: a labelled data set is expected as {LAYOUT}; "
                                "point --data at the folder that holds train/ and val/")
    return path


def class_folders(folder: str) -> list[str]:
    """The sorted sub-folder names of ``folder`` (its classes)."""
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir())


def train_classes(data_dir: str | os.PathLike) -> list[str]:
    """The class names of a labelled data set: the folders of ``train/``, sorted."""
    classes = class_folders(split_dir(data_dir, "train"))
    if not classes:
        raise FileNotFoundError(f"{split_dir(data_dir, 'train')!r} has no class folders; expected {LAYOUT}")
    return classes


class LabelledImages(tvd.ImageFolder):
    """``data_dir/split`` as an ImageFolder whose class indices are those of ``train/``.

    ``subset_file``: keep only the training files that list names (the official 1% format)."""

    def __init__(self, data_dir: str | os.PathLike, split: str, transform: Callable | None = None,
                 subset_file: str | os.PathLike | None = None):
        self.train_classes = train_classes(data_dir)
        root = split_dir(data_dir, split)
        unknown = sorted(set(class_folders(root)) - set(self.train_classes))
        if unknown:
            raise UnknownClassError(f"{root} has classes that train/ lacks: {', '.join(unknown[:10])}"
                                    f"{' ...' if len(unknown) > 10 else ''}; every {split}/ class folder "
                                    "needs a train/ folder of the same name")
        super().__init__(root, transform=transform, loader=load_rgb, allow_empty=True)
        if subset_file is not None:
            if split != "train":
                raise ValueError(f"a subset list selects training images; got split {split!r}")
            self.samples = subset_samples(root, subset_file, self.class_to_idx)
            self.imgs = self.samples
            self.targets = [label for _, label in self.samples]
        if not self.samples:
            raise FileNotFoundError(f"no images found under {root!r}; expected {LAYOUT}")

    def find_classes(self, directory: str) -> tuple[list[str], dict[str, int]]:
        """The classes of ``train/`` (so ``val/`` uses the same indices)."""
        return self.train_classes, {name: i for i, name in enumerate(self.train_classes)}

    @property
    def num_classes(self) -> int:
        return len(self.classes)


def read_subset_list(subset_file: str | os.PathLike) -> list[str]:
    """The file names of a subset list (one per line; blank lines skipped)."""
    with open(subset_file, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    if not names:
        raise ValueError(f"the subset list {subset_file} names no files; expected one '<class>_<n>.JPEG' per line")
    return names


def subset_samples(train_dir: str, subset_file: str | os.PathLike,
                   class_to_idx: dict[str, int]) -> list[tuple[str, int]]:
    """(path, label) of every file a subset list names, in the list's order:
    ``train_dir/<class>/<name>`` with ``<class>`` the part of the name before the first '_'."""
    samples, missing = [], []
    for name in read_subset_list(subset_file):
        cls = name.split("_")[0]
        if cls not in class_to_idx:
            raise UnknownClassError(f"{subset_file} names {name!r} of class {cls!r}, which is not a folder of "
                                    f"{train_dir}; lines are '<class>_<n>.JPEG' with <class> a train/ folder")
        path = os.path.join(train_dir, cls, name)
        if not os.path.isfile(path):
            missing.append(path)
        samples.append((path, class_to_idx[cls]))
    if missing:
        raise FileNotFoundError(f"{len(missing)} files named by {subset_file} do not exist (first: {missing[0]}); "
                                "the list must match the train/ folder it is used with")
    return samples
