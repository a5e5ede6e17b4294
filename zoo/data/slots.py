"""Batches that DataLoader workers write into shared memory made once, and send back by number.

torch's ``default_collate`` puts every batch a worker makes into a fresh shared-memory segment: the worker creates it
(the kernel zeroes its pages as they are first written), the main process maps it page by page as it reads it, and
both unmap it afterwards. At 224 px that cost about 13 ms of CPU time a batch of 64, a tenth of a streaming
loader's. Here a few batches of shared memory ("slots") are made once, before the workers start: the batch sampler
gives ``(slot, batch)`` with batch k of an epoch in slot k mod ``slot_count(workers)``, a worker writes the batch into
its slot and sends back only what is small (the slot's number, the labels).

Why a slot is never written while it is read: when the main process takes batch k from the loader, the loader hands
a worker batch k + PREFETCH x workers (it keeps that many in flight); the main process is done with batch k's slot
(copied what it needs out of it) before it takes batch k + 1, and the next batch to reuse that slot is
k + ``slot_count(workers)``, one more than the loader can be ahead. An epoch abandoned half-way is safe too: with
persistent workers, the next epoch's iterator first waits for the batches still in flight.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch

__all__ = ["PREFETCH", "EpochBatches", "empty_batches", "slot_count", "whole"]

PREFETCH = 2  # batches each DataLoader worker works ahead (torch's default), passed as prefetch_factor


def slot_count(workers: int) -> int:
    """Slots for ``workers`` DataLoader workers: the batches in flight, the one the main process reads, a spare."""
    return PREFETCH * workers + 2


def empty_batches(shape: Sequence[int], channels_last: bool = False) -> torch.Tensor:
    """An empty uint8 tensor of ``shape`` (... x C x H x W), each C x H x W image channels_last if asked."""
    *lead, c, h, w = shape
    strides = [c * h * w, *((1, w * c, c) if channels_last else (h * w, w, 1))]
    for n in reversed(lead[1:]):
        strides.insert(0, strides[0] * n)
    return torch.empty_strided(tuple(shape), tuple(strides), dtype=torch.uint8)


def whole(batch: Any) -> Any:
    """The collate function of a Dataset whose ``__getitems__`` gives whole batches."""
    return batch


class EpochBatches(torch.utils.data.Sampler):
    """A DataLoader's batch sampler whose batches are set before each epoch (``batches``); with ``slots``, each
    given as ``(slot, batch)``, batch k in slot k mod ``slots``."""

    def __init__(self, slots: int | None = None) -> None:
        self.slots = slots
        self._batches: list[Any] = []

    @property
    def batches(self) -> list[Any]:
        return self._batches

    @batches.setter
    def batches(self, batches: Sequence[Any]) -> None:
        self._batches = [(k % self.slots, b) for k, b in enumerate(batches)] if self.slots else list(batches)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._batches)

    def __len__(self) -> int:
        return len(self._batches)
