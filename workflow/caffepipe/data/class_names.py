"""What each dataset's classes are called, for figures and tables. MNIST's classes are its digits; CIFAR-10's
are the names of its batches.meta.txt, in label order."""
from __future__ import annotations

CLASS_NAMES = {
    "mnist": tuple(str(digit) for digit in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                      "Ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}


def class_names(dataset: str | None, n_classes: int) -> list[str]:
    """The names of classes 0..n_classes-1; their numbers when the dataset is unknown or has another count."""
    names = CLASS_NAMES.get(dataset or "")
    if names is None or len(names) != n_classes:
        return [str(k) for k in range(n_classes)]
    return list(names)
