"""Large CPU tensors: freed memory reused within zoo's work (``zoo.memory``), and the normalisation of image batches
in their own layout (``zoo.data.batching.normalize``)."""

from __future__ import annotations

import resource

import pytest
import torch

from zoo import memory
from zoo.data.batching import normalize

MB48 = 12 * 2**20  # float32 elements of a 48 MiB tensor: over glibc's largest mmap threshold (32 MiB)


def faults_of(allocations: int) -> int:
    """Minor page faults of allocating, filling and freeing a 48 MiB tensor ``allocations`` times."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(allocations):
        x = torch.empty(MB48)
        x.fill_(1.0)
        del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before


needs_glibc = pytest.mark.skipif(not memory.supported(), reason="zoo.memory changes glibc's malloc only")


@needs_glibc
def test_freed_memory_is_reused_within_the_block_and_given_back_after():
    faults_of(1)  # whatever the allocator adapted to before, from here it has seen a 48 MiB block
    outside = faults_of(6)
    with memory.reuse_freed_memory() as applied:
        assert applied
        faults_of(2)  # the first ones map their pages
        inside = faults_of(6)
        with memory.reuse_freed_memory():  # nested: the inner end does not undo the outer block
            pass
        inner_after = faults_of(6)
    after = faults_of(6)
    # each fresh mapping faults in every page again (6 x 12,288 here); reused memory does not, but the kernel may
    # still reclaim a kept block's pages now and then (one allocation's worth was seen in 1 run of 3)
    assert inside * 2 < outside
    assert inner_after * 2 < outside
    assert after * 4 > outside  # glibc's own behaviour again once the block ended


def test_turned_off_by_the_environment(monkeypatch):
    monkeypatch.setenv("ZOO_REUSE_MEMORY", "0")
    assert not memory.supported()
    with memory.reuse_freed_memory() as applied:
        assert applied is False


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("channels_last", [False, True])
def test_normalize_equals_the_plain_arithmetic_in_the_batch_layout(channels, channels_last):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (4, channels, 7, 5), dtype=torch.uint8, generator=g)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    mean, std = torch.tensor([0.485, 0.456, 0.406][:channels]), torch.tensor([0.229, 0.224, 0.225][:channels])
    scale, shift = (1 / (255 * std)).view(1, -1, 1, 1), (-mean / std).view(1, -1, 1, 1)
    out = normalize(x, scale, shift)
    assert out.dtype == torch.float32 and out.shape == x.shape
    assert torch.equal(out, x.float().mul_(scale).add_(shift))  # the same two roundings per element
    assert torch.allclose(out, (x.float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1), atol=1e-5)
    assert out.is_contiguous(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
