"""Vision Transformer (ViT).

Paper: "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale", Dosovitskiy, Beyer,
Kolesnikov, Weissenborn, Zhai, Unterthiner, Dehghani, Minderer, Heigold, Gelly, Uszkoreit and Houlsby, 2020.

The image is cut into non-overlapping P x P patches, each patch is linearly embedded (a P x P convolution with
stride P, which is the same linear map), a learned class token is prepended, learned position embeddings are
added, and a stack of pre-norm Transformer encoder blocks runs over the tokens. The class token's final state
feeds the classifier.

Module names follow timm (``patch_embed.proj``, ``blocks.i.attn.qkv``, ...), so a timm state dict loads as it
is; ``convert_weights`` maps torchvision's ``VisionTransformer`` keys onto these. Parameter counts at 224 px and
1000 classes equal torchvision's ``vit_b_16``, ``vit_b_32``, ``vit_l_16`` and timm's ``vit_tiny_patch16_224``,
``vit_small_patch16_224``.

Small inputs: with ``patch_size`` left out, images below 64 px use 4 x 4 patches (28 px -> 7 x 7 = 49 tokens,
32 px -> 8 x 8 = 64 tokens), since 16 x 16 patches would leave a 28 px image with one token or none.
"""

from __future__ import annotations

import math
import re

import torch
import torch.nn as nn
import torch.nn.functional as F
from einops import rearrange

from zoo.features import MATCH_PREV_GROUP, feature_take_indices
from zoo.hookspecs import hookimpl
from zoo.models.family import Family, merge_variant
from zoo.models.layers import SMALL_INPUT, DropPath, is_small_input
from zoo.specs import Reported

PAPER = "An Image is Worth 16x16 Words: Transformers for Image Recognition at Scale"
URL = "https://arxiv.org/abs/2010.11929"

# einops works on tensors, not on torch.fx's proxies: symbolic tracing (create_feature_extractor) keeps each
# rearrange as one call in the graph instead.
torch.fx.wrap("rearrange")

SMALL_PATCH = 4  # below SMALL_INPUT px, and with no patch_size given, patches are this wide


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _divisors(n: int) -> list[int]:
    return [d for d in range(2, n) if n % d == 0]


# ---------------------------------------------------------------------------------------------------------
# Blocks
# ---------------------------------------------------------------------------------------------------------


@torch.fx.wrap  # one call in a traced graph (torch.fx, create_feature_extractor), so the check still runs there
def check_image_size(x: torch.Tensor, img_size: tuple[int, int]) -> torch.Tensor:
    """``x`` unchanged if its images are ``img_size``, else a ValueError saying which ``img_size`` fits them."""
    h, w = x.shape[-2], x.shape[-1]  # indexed, and a string for the fit: torch.jit.script types both statically
    if h != img_size[0] or w != img_size[1]:
        fit = str(w) if h == w else f"({h}, {w})"
        raise ValueError(
            f"this ViT was built for {img_size[0]}x{img_size[1]} images, got {h}x{w}; create it with img_size={fit}"
        )
    return x


class PatchEmbed(nn.Module):
    """Cut the image into P x P patches and embed each one: a stride-P convolution is that linear map."""

    def __init__(self, img_size: tuple[int, int], patch_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        self.img_size = img_size
        self.grid_size = (img_size[0] // patch_size, img_size[1] // patch_size)
        self.num_patches = self.grid_size[0] * self.grid_size[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = check_image_size(x, self.img_size)  # the position embeddings fix the number of patches
        x = self.proj(x)  # N x D x H/P x W/P
        # the same as rearrange(x, "b c (h p1) (w p2) -> b (h w) (p1 p2 c)") followed by a Linear layer
        return x.flatten(2).transpose(1, 2)  # b d h w -> b (h w) d: N x L x D


class Attention(nn.Module):
    """Multi-head self-attention with one fused q/k/v projection (the layout of nn.MultiheadAttention)."""

    def __init__(
        self, dim: int, num_heads: int, qkv_bias: bool = True, attn_drop: float = 0.0, proj_drop: float = 0.0
    ) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim={dim} must be divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.attn_drop = attn_drop
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch ops with einops' patterns as comments: torch.jit.script compiles no einops call
        b, n = x.shape[0], x.shape[1]
        qkv = self.qkv(x)  # N x L x 3D
        qkv = qkv.reshape(b, n, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)  # b n (three h d) -> three b h n d
        q, k, v = qkv[0], qkv[1], qkv[2]  # indexed, not unpacked: torch.fx cannot unpack a traced value
        x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop if self.training else 0.0)
        x = x.transpose(1, 2).flatten(2)  # b h n d -> b n (h d): N x L x D
        return self.proj_drop(self.proj(x))


class Mlp(nn.Module):
    """The Transformer's feed-forward part: Linear -> GELU -> Linear, mlp_ratio times wider inside."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.drop1 = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop2(self.fc2(self.drop1(self.act(self.fc1(x)))))


class Block(nn.Module):
    """Pre-norm encoder block: x + Attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias=qkv_bias, attn_drop=attn_drop, proj_drop=proj_drop)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=proj_drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


# ---------------------------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------------------------


class VisionTransformer(nn.Module):
    """ViT: patch embedding + class token + position embeddings -> encoder blocks -> LayerNorm -> head."""

    # Transformers want a gentler AdamW peak than zoo.fit's 1e-2 (the paper: 3e-3 at batch 4096, with warm-up);
    # fit uses this when the caller gives no lr.
    default_lr = 1e-3

    def __init__(
        self,
        *,
        num_classes: int = 1000,
        in_chans: int = 3,
        img_size: int | tuple[int, int] = 224,
        drop_rate: float = 0.0,
        patch_size: int = 16,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
        proj_drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        name: str = "vit",
    ) -> None:
        super().__init__()
        size = _check_vit_size(name, img_size, patch_size)
        self.num_classes = num_classes
        self.embed_dim = self.num_features = embed_dim
        self.patch_size = patch_size

        self.patch_embed = PatchEmbed(size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(proj_drop_rate)
        rates = [drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]  # stochastic depth grows linearly
        self.blocks = nn.Sequential(
            *[Block(embed_dim, num_heads, mlp_ratio, qkv_bias, proj_drop_rate, attn_drop_rate, r) for r in rates]
        )
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        # one feature per block, as timm's ViT: its patch tokens as a map at the patch stride
        self.feature_info = [dict(num_chs=embed_dim, reduction=patch_size, module=f"blocks.{i}") for i in range(depth)]
        self.head_drop = nn.Dropout(drop_rate)
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        self._init_weights()

    def _init_weights(self) -> None:
        # As timm and torchvision: normal(0.02) linear layers and position embeddings, zero biases, a zero
        # classifier (so training starts from uniform predictions), the patch conv scaled by its fan-in.
        # timm's trunc_normal_(std=.02) truncates at +-2, i.e. at 100 std, so its distribution is that of
        # normal_, which is cheaper (ViT-L on 2 cores: 1.0 s instead of 1.5 s to initialise).
        nn.init.normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        fan_in = self.patch_embed.proj.in_channels * self.patch_size**2
        nn.init.trunc_normal_(self.patch_embed.proj.weight, std=math.sqrt(1 / fan_in))
        nn.init.zeros_(self.patch_embed.proj.bias)
        for m in self.blocks.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if isinstance(self.head, nn.Linear):
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Patch tokens, the class token before them, position embeddings added."""
        x = self.patch_embed(x)  # N x L x D, L = (H/P)(W/P)
        cls = self.cls_token.expand(x.shape[0], -1, -1)  # N x 1 x D
        return self.pos_drop(torch.cat([cls, x], dim=1) + self.pos_embed)  # N x (L+1) x D

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.embed(x))
        return self.norm(x)  # N x (L+1) x D

    def forward_intermediates(
        self,
        x: torch.Tensor,
        indices: int | list[int] | tuple[int, ...] | None = None,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = False,
    ) -> list[torch.Tensor] | tuple[torch.Tensor, list[torch.Tensor]]:
        """The final features (``forward_features``) and the outputs of the blocks named by ``indices``, as
        timm's ViT: patch tokens only (the class token dropped), ``N x D x H/P x W/P`` for ``"NCHW"`` or
        ``N x L x D`` for ``"NLC"``.

        Args:
            indices: ``None`` every block, an int ``n`` the last ``n``, a sequence those (negative from the end).
            norm: pass each taken block output through the final LayerNorm.
            stop_early: stop after the last block asked for (the final features are then its output, unnormed).
            intermediates_only: return the list only.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        take, last = feature_take_indices(len(self.blocks), indices)
        h, w = self.patch_embed.grid_size
        intermediates = []
        x = self.embed(x)
        blocks = self.blocks[: last + 1] if stop_early else self.blocks
        for i, block in enumerate(blocks):
            x = block(x)
            if i in take:
                tokens = (self.norm(x) if norm else x)[:, 1:]  # N x L x D, the class token dropped
                nchw = output_fmt == "NCHW"
                intermediates.append(rearrange(tokens, "b (h w) d -> b d h w", h=h, w=w) if nchw else tokens)
        if intermediates_only:
            return intermediates
        return (self.norm(x) if len(blocks) == len(self.blocks) else x), intermediates

    def prune_intermediate_layers(
        self, indices: int | list[int] | tuple[int, ...] = 1, prune_norm: bool = False, prune_head: bool = True
    ) -> list[int]:
        """Drop the blocks after the last one ``indices`` names (and the final norm, the head); returns the
        blocks' absolute indices."""
        take, last = feature_take_indices(len(self.blocks), indices)
        self.blocks = self.blocks[: last + 1]
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.head_drop(x[:, 0])  # N x D: the class token
        return x if pre_logits else self.head(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))

    def get_classifier(self) -> nn.Module:
        return self.head

    def reset_classifier(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.head = nn.Linear(self.embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def group_matcher(self, coarse: bool = False) -> dict:
        """timm's parameter groups: the embeddings, each block, the final norm with the last block; the head last."""
        return dict(
            stem=r"^cls_token|^pos_embed|^patch_embed", blocks=[(r"^blocks\.(\d+)", None), (r"^norm", MATCH_PREV_GROUP)]
        )

    def no_weight_decay(self) -> set[str]:
        """What timm does not weight-decay in a ViT: the learned position embeddings and the class token."""
        return {"pos_embed", "cls_token"}


def _check_vit_size(name: str, img_size: int | tuple[int, int], patch_size: int, why: str = "") -> tuple[int, int]:
    """One clear error at creation for an image the patches cannot tile; ``why`` says where the patch came from."""
    if not isinstance(patch_size, int) or patch_size < 1:
        raise ValueError(f"{name}: patch_size must be a positive integer, got {patch_size!r}")
    size = _pair(img_size)
    smallest = min(size)
    if smallest < patch_size:
        raise ValueError(
            f"{name} needs img_size >= {patch_size} with patch_size={patch_size}{why} (got {img_size}); "
            f"pass a smaller patch_size= or upsample the input"
        )
    for s in size:
        if s % patch_size:
            lower, upper = s // patch_size * patch_size, (s // patch_size + 1) * patch_size
            divs = _divisors(s)
            hint = f", or a patch_size that divides {s} ({', '.join(map(str, divs[:6]))})" if divs else ""
            raise ValueError(
                f"{name}: img_size {s} is not a multiple of patch_size={patch_size}{why}; "
                f"use img_size {lower} or {upper}{hint}"
            )
    return size


# ---------------------------------------------------------------------------------------------------------
# Weight conversion: torchvision's VisionTransformer -> these keys
# ---------------------------------------------------------------------------------------------------------

_TV_RULES = [
    (r"^conv_proj\.", "patch_embed.proj."),
    (r"^class_token$", "cls_token"),
    (r"^encoder\.pos_embedding$", "pos_embed"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_1\.", r"blocks.\1.norm1."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.ln_2\.", r"blocks.\1.norm2."),
    # nn.MultiheadAttention keeps q, k, v stacked as rows of in_proj_weight, head-major inside each: exactly
    # the (three h d) layout of the fused qkv Linear, so the tensor moves over unchanged.
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_weight$", r"blocks.\1.attn.qkv.weight"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.in_proj_bias$", r"blocks.\1.attn.qkv.bias"),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.self_attention\.out_proj\.", r"blocks.\1.attn.proj."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.0\.", r"blocks.\1.mlp.fc1."),
    (r"^encoder\.layers\.encoder_layer_(\d+)\.mlp\.3\.", r"blocks.\1.mlp.fc2."),
    (r"^encoder\.ln\.", "norm."),
    (r"^heads\.head\.", "head."),
]


def convert_weights(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map a torchvision ``VisionTransformer`` state dict onto zoo's (timm's) ViT keys.

    timm state dicts already use zoo's keys and pass through unchanged. torchvision's optional
    ``heads.pre_logits`` layer (``representation_size``) has no counterpart and is refused.
    """
    if any(k.startswith("heads.pre_logits") for k in state_dict):
        raise ValueError("torchvision ViT with representation_size (heads.pre_logits) has no zoo counterpart")
    out = {}
    for key, value in state_dict.items():
        new = key
        for pattern, repl in _TV_RULES:
            new, n = re.subn(pattern, repl, key)
            if n:
                break
        out[new] = value
    return out


# ---------------------------------------------------------------------------------------------------------
# Builders
# ---------------------------------------------------------------------------------------------------------

FAMILY = Family(
    "vit",
    VisionTransformer,
    paper=PAPER,
    year=2020,
    url=URL,
    input_size=(3, 224, 224),
    num_classes=1000,
    tags=("transformer", "attention"),
    convert_weights=convert_weights,
    notes=(
        "img_size must be a multiple of patch_size; without patch_size=, images below "
        f"{SMALL_INPUT} px use {SMALL_PATCH}x{SMALL_PATCH} patches (28 px -> 49 tokens, 32 px -> 64). Any config "
        "value (depth, embed_dim, num_heads, mlp_ratio, ...) can be overridden by keyword."
    ),
)


def _create_vit(variant: str, kwargs: dict, *, patch_size: int, **cfg) -> VisionTransformer:
    """A ViT with the variant's ``patch_size`` and ``cfg`` (``embed_dim``, ``depth``, ``num_heads``; mlp_ratio 4
    everywhere), overridden by the user's ``kwargs``. Without ``patch_size=``, images below ``SMALL_INPUT`` px use
    ``SMALL_PATCH``-wide patches."""
    kwargs = merge_variant(kwargs, **cfg)
    if kwargs.get("patch_size") is None:
        img_size = kwargs.get("img_size", 224)
        small = is_small_input(img_size)
        why = f" (the patch used below {SMALL_INPUT} px unless patch_size= is given)" if small else ""
        kwargs["patch_size"] = SMALL_PATCH if small else patch_size
        _check_vit_size(variant, img_size, kwargs["patch_size"], why)
    return VisionTransformer(name=variant, **kwargs)


@FAMILY.variant(notes="Parameters at 224 px and 1000 classes equal timm's vit_tiny_patch16_224.")
def vit_tiny_patch16(**kwargs) -> VisionTransformer:
    """ViT-Ti/16 (Dosovitskiy et al., 2020; the Tiny width from DeiT, Touvron et al., 2021): 192 wide, 12 deep."""
    return _create_vit("vit_tiny_patch16", kwargs, patch_size=16, embed_dim=192, depth=12, num_heads=3)


@FAMILY.variant(notes="Parameters at 224 px and 1000 classes equal timm's vit_small_patch16_224.")
def vit_small_patch16(**kwargs) -> VisionTransformer:
    """ViT-S/16 (Dosovitskiy et al., 2020; the Small width from DeiT, Touvron et al., 2021): 384 wide, 12 deep."""
    return _create_vit("vit_small_patch16", kwargs, patch_size=16, embed_dim=384, depth=12, num_heads=6)


@FAMILY.variant(
    notes="Parameters at 224 px and 1000 classes equal torchvision's vit_b_16; weights= loads its.", twin="vit_b_16"
)
def vit_base_patch16(**kwargs) -> VisionTransformer:
    """ViT-B/16 (Dosovitskiy et al., 2020): 768 wide, 12 deep, 12 heads, 16 x 16 patches."""
    return _create_vit("vit_base_patch16", kwargs, patch_size=16, embed_dim=768, depth=12, num_heads=12)


@FAMILY.variant(
    notes="Parameters at 224 px and 1000 classes equal torchvision's vit_b_32; weights= loads its.", twin="vit_b_32"
)
def vit_base_patch32(**kwargs) -> VisionTransformer:
    """ViT-B/32 (Dosovitskiy et al., 2020): 768 wide, 12 deep, 12 heads, 32 x 32 patches."""
    return _create_vit("vit_base_patch32", kwargs, patch_size=32, embed_dim=768, depth=12, num_heads=12)


@FAMILY.variant(
    notes="Parameters at 224 px and 1000 classes equal torchvision's vit_l_16; weights= loads its.",
    twin="vit_l_16",
    # Table 2: fine-tuned on ImageNet after pre-training on ImageNet-21k ("I21k"), and on JFT-300M ("JFT").
    reported=(
        Reported("ImageNet-1k", "top-1", 85.30, "Dosovitskiy et al. 2020, Table 2 (ViT-L/16, I21k pre-training)"),
        Reported("ImageNet-1k", "top-1", 87.76, "Dosovitskiy et al. 2020, Table 2 (ViT-L/16, JFT pre-training)"),
    ),
)
def vit_large_patch16(**kwargs) -> VisionTransformer:
    """ViT-L/16 (Dosovitskiy et al., 2020): 1024 wide, 24 deep, 16 heads, 16 x 16 patches."""
    return _create_vit("vit_large_patch16", kwargs, patch_size=16, embed_dim=1024, depth=24, num_heads=16)


@hookimpl
def register_models(register):
    FAMILY.register_all(register)
