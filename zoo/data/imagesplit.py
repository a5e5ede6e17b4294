"""``ImageSplit``: a split of images stored as uint8 squares, read by index from a memory-mapped cache, or decoded
from their files as they are read (streaming). ``zoo.data.stream.ImageBatches`` reads it a batch at a time."""

from __future__ import annotations

import torch

from zoo.inputs import InputRecord

__all__ = ["ImageSplit", "center_crop"]


def center_crop(images: torch.Tensor, size: int) -> torch.Tensor:
    """The centre ``size`` x ``size`` of N x C x S x S (or C x S x S) images: a view, no copy."""
    s = images.shape[-1]
    top = (images.shape[-2] - size) // 2
    left = (s - size) // 2
    return images[..., top : top + size, left : left + size]


class ImageSplit(torch.utils.data.Dataset):
    """Images held as uint8 squares of a stored size, plus their labels; the model sees ``img_size`` crops of them.

    Exactly one of ``images`` (N x C x S x S uint8, usually a memory map of a cache file: reading a batch touches
    only its rows) or ``files`` (a map-style Dataset giving ``(uint8 C x S x S, label)``, decoding as it is read,
    e.g. ``zoo.data.decode.ImageFiles``). As a torch Dataset, item ``i`` is the centre ``img_size`` crop and the
    label, which is what evaluation sees; ``make_batches`` reads it a batch at a time instead (``ImageBatches``).

    Args:
        images: the stored squares (cached).
        files: the decoder of the stored squares (streaming).
        labels: int64 N class indices (of the whole store).
        img_size: the square side the model sees (<= the stored size).
        indices: the store's rows this split holds (a subset), in order; default: all of them.
        mean, std: per channel in [0, 1] units (``load_dataset`` fills them in).
        hflip: whether horizontal flips are a valid augmentation.
        classes: class names, index order.
        path: the cache file, when cached.
    """

    def __init__(
        self,
        *,
        labels: torch.Tensor,
        img_size: int,
        images: torch.Tensor | None = None,
        files: torch.utils.data.Dataset | None = None,
        indices: torch.Tensor | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
        hflip: bool | None = None,
        classes: list[str] | None = None,
        path: str | None = None,
    ) -> None:
        if (images is None) == (files is None):
            raise ValueError("ImageSplit: give exactly one of images= (cached squares) or files= (a decoder)")
        self.images, self.files = images, files
        if images is not None:
            self.channels, self.stored_size = int(images.shape[1]), int(images.shape[-1])
        else:
            self.channels, self.stored_size = int(files.channels), int(files.size)  # type: ignore[union-attr]
        if not 1 <= int(img_size) <= self.stored_size:
            raise ValueError(f"ImageSplit: img_size {img_size} must be in 1..{self.stored_size} (the stored size)")
        self.img_size = int(img_size)
        self.base_labels = labels.to(torch.int64)
        self.indices = indices
        self.labels = self.base_labels if indices is None else self.base_labels[indices]
        self.mean, self.std, self.hflip = mean, std, hflip
        self.classes, self.path = classes, path

    @property
    def cached(self) -> bool:
        """Read from a cache (True) or decoded from the files as it is read (False)."""
        return self.images is not None

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        how = f"cached at {self.path}" if self.cached else "streamed from files"
        return (
            f"ImageSplit({len(self)} images, {self.channels}x{self.stored_size}x{self.stored_size} stored, "
            f"img_size={self.img_size}, {how})"
        )

    def base_index(self, positions: torch.Tensor) -> torch.Tensor:
        """The store's rows of this split's ``positions``."""
        return positions if self.indices is None else self.indices[positions]

    def read(self, positions: torch.Tensor) -> torch.Tensor:
        """The stored squares at ``positions``: uint8 B x C x S x S (decoded one by one when streaming)."""
        rows = self.base_index(positions)
        if self.images is not None:
            if self.images.dim() == 4 and not self.images.is_contiguous():  # a cache: pixels stored interleaved
                return self.images.permute(0, 2, 3, 1).index_select(0, rows).permute(0, 3, 1, 2)  # read as stored
            return self.images.index_select(0, rows)
        return torch.stack([self.files[int(i)][0] for i in rows.tolist()])  # type: ignore[index]

    def stored_rows(self, positions: torch.Tensor) -> list[torch.Tensor]:
        """The cached squares at ``positions`` as views of the store (C x S x S each): nothing is read until used."""
        if self.images is None:
            raise ValueError("ImageSplit.stored_rows: a streamed split has no store to view; use read()")
        return [self.images[r] for r in self.base_index(positions).tolist()]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = self.read(torch.tensor([int(i)]))[0]
        return center_crop(x, self.img_size).contiguous(), int(self.labels[i])

    def subset(self, positions: torch.Tensor) -> ImageSplit:
        """The images at ``positions`` (a view of the same store: nothing is copied or decoded)."""
        return ImageSplit(
            labels=self.base_labels, img_size=self.img_size, images=self.images, files=self.files,
            indices=self.base_index(torch.as_tensor(positions, dtype=torch.int64)), mean=self.mean, std=self.std,
            hflip=self.hflip, classes=self.classes, path=self.path,
        )  # fmt: skip

    def input_record(self) -> InputRecord:
        """What the model needs to see new images as it saw these: resized (shorter side ``stored_size``) and
        centre-cropped as torchvision's ``Resize`` + ``CenterCrop`` would do them, as evaluation here does."""
        return InputRecord(
            input_size=(self.channels, self.img_size, self.img_size),
            input_dtype="uint8",
            mean=self.mean or None,
            std=self.std or None,
            resize_size=self.stored_size,
            crop_size=(self.img_size, self.img_size),
            num_classes=len(self.classes) if self.classes else None,
            classes=list(self.classes) if self.classes else None,
            hflip=bool(self.hflip),
        )
