"""Example values for constructor parameters that model code names the same way everywhere.

A class that needs arguments no configuration or call site provides is tried with small
example values guessed from its parameter names (``dim=32, heads=4, depth=2``), then with
wider ones (channels divisible by 32 for GroupNorm, images divisible by common patch sizes).
The result is labelled as built with example arguments: its figures are exact for these
arguments, which the lens and hover show, with the pyproject.toml line that pins real ones.
Standalone: the standard library only.
"""

from __future__ import annotations

import re

# One row per kind of parameter: name pattern, then the (small, wide) values for a scalar
# and for a sequence annotation (``channels: Sequence[int]``); None: nothing to guess.
_Row = tuple[str, tuple[str, str], tuple[str, str] | None]
_ROWS: tuple[_Row, ...] = (
    (r"^(spatial_dims?|n_?dims|num_dims|ndim)$", ("2", "2"), None),
    (r"(num_|n_)?(heads?|head_count)$|^n_?head$|^nheads$", ("4", "4"), ("(2, 4)", "(2, 4)")),
    (r"^(dim_head|head_dim|d_head|key_dim|qk_dim|v_dim|dim_per_head)$", ("16", "32"), None),
    (
        r"^(depths?|num_layers|n_layers?|layers|num_blocks|n_blocks|num_hidden_layers"
        r"|num_res_blocks)$|^num_\w+_layers$|_depth$",
        ("2", "2"),
        ("(2, 2)", "(2, 2)"),
    ),
    (
        r"^(image_size|img_size|input_size|resolution|image_height|image_width|size)$",
        ("32", "192"),
        ("(32, 32)", "(192, 192)"),
    ),
    (
        r"^(patch_size|patch|frame_patch_size|image_patch_size)$",
        ("8", "16"),
        ("(8, 8)", "(16, 16)"),
    ),
    (
        r"^(frames|num_frames|seq_len|max_seq_len|max_len|block_size|n_ctx|n_positions)$",
        ("16", "64"),
        None,
    ),
    (r"^(num_classes|n_classes|classes|num_labels|out_classes)$", ("10", "10"), None),
    (r"^(norm_num_groups|num_groups|resnet_groups|gn_groups)$", ("8", "32"), None),
    (
        r"^(channels|in_channels?|in_chans|in_ch|in_chs|in_planes|inplanes|in_dim|c_in"
        r"|n_channels|num_channels|label_nc|input_nc)$",
        ("3", "64"),
        ("(16, 32)", "(64, 128)"),
    ),
    (
        r"^(out_channels?|out_chans|out_ch|out_chs|planes|out_planes|outplanes|out_dim|c_out"
        r"|temb_channels|prev_output_channel|skip_channels|output_nc|mid_channels)$",
        ("16", "64"),
        ("(16, 32)", "(64, 128)"),
    ),
    (r"^(num_tokens|vocab_size|n_vocab|vocab|num_embeddings|codebook_size)$", ("100", "100"), None),
    (r"^(kernel_size|kernel|ksize|k)$", ("3", "3"), ("(3, 3)", "(3, 3)")),
    (r"^(strides?|dilation)$", ("1", "1"), ("(2, 2)", "(2, 2)")),
    (r"^groups$", ("1", "1"), None),
    (r"^(padding|layer_idx|layer_id|layer_index|block_idx|idx)$", ("0", "0"), None),
    (r"^(reduction|reduction_ratio|mlp_ratio|mlp_mult|expansion|ratio|mult)$", ("4", "4"), None),
    (r"^(window_size|window)$", ("4", "8"), None),
    (r"^(norm_eps|eps|layer_norm_eps)$", ("1e-5", "1e-5"), None),
    (r"^(upsample_kernel_size|upsample_factor|scale_factor|downsample_factor)$", ("2", "2"), None),
    (r"^feature_size$", ("24", "48"), None),  # monai's UNETR family: a multiple of 12
    (r"^(norm_name|norm)$", ('"batch"', '"batch"'), None),  # monai's factories take names
    (r"^(act_name|act)$", ('"relu"', '"relu"'), None),
    (r"^theta$", ("10000", "10000"), None),  # rotary embeddings' base
    (
        r"(^|_)(dim|dims|d_model|hidden_size|hidden_dim|embed_dim|emb_dim|width|features"
        r"|num_features|hidden|n_embd|d_hidden|mlp_dim|ff_dim|dim_ff|inner_dim|d_ff"
        r"|hidden_size|latent_size)$"
        r"|^dim_(in|out|inner|hidden|cond|latent)$",
        ("32", "64"),
        ("(16, 32)", "(64, 128)"),
    ),
    (r"(dropout|drop|_rate|^p)$", ("0.0", "0.0"), None),
)
_TABLE = tuple((re.compile(pattern), scalar, sequence) for pattern, scalar, sequence in _ROWS)

_SIZE_ANNOTATIONS = ("int", "float", "Optional", "Union")
# what discovery reports for ``Sequence[int]``, ``tuple[int, ...]``, ``list[int]``...
SEQUENCE = "Sequence"

VARIANTS = ("small", "wide")


def example_value(name: str, annotation: str | None, variant: str = "small") -> str | None:
    """An example value for a required constructor parameter, by its name, if it has one
    of the names models use for sizes (``dim``, ``heads``, ``depth``, ``image_size``...)."""
    kind = annotation.rpartition(".")[2] if annotation else None
    if kind == "bool":
        return "False"
    wide = variant == "wide"
    lowered = name.lower()
    for pattern, scalar, sequence in _TABLE:
        if not pattern.search(lowered):
            continue
        if scalar[0].startswith('"'):  # a name: norm_name="batch" (monai: str | tuple)
            return scalar[wide] if kind in (None, "str", "tuple", SEQUENCE) else None
        if kind is not None and kind not in (*_SIZE_ANNOTATIONS, SEQUENCE):
            return None  # a tensor, a config object, a callable: nothing to guess
        if kind == SEQUENCE:
            return None if sequence is None else sequence[wide]
        return scalar[wide]
    return None


# Arguments that would download or load weights, and the values that do not.
NO_WEIGHTS = {
    "pretrained": "False",
    "weights": "None",
    "pretrained_backbone": "False",
    "weights_backbone": "None",
    "encoder_weights": "None",
    "progress": "False",
}
