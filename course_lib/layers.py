"""Every Keras layer of the course, in one namespace: `from course_lib.layers import X`.

Each layer lives in the module of its concept; this module only gathers them (a name
is imported from its module the first time it is used, so importing `course_lib.layers`
stays cheap and `KERAS_BACKEND` can still be chosen first). A new layer gets a line in
`_HOME` (tests/test_layers_namespace.py finds every layer of the package and checks
that it is listed here). The library's own modules import layers from their modules,
never through this facade, so that their dependencies stay visible.

>>> from course_lib.layers import AdditiveAttention
>>> AdditiveAttention.__module__
'course_lib.scoring'
"""

import importlib

_HOME = {
    # lessons 02, 05: the single-head base that a subclass gives its score
    "ScoredAttention": "attention",
    # lesson 02: scoring functions
    "AdditiveAttention": "scoring",
    "LuongAttention": "scoring",
    # lesson 03-04: recurrent encoder-decoder
    "RNNEncoder": "rnn",
    "AttentionDecoder": "rnn",
    # lesson 05: scaled dot-product attention
    "ScaledDotProductAttention": "attention",
    # lesson 06: hard, location-based and spatial attention
    "HardAttention": "hard_attention",
    "LocationAttention": "scoring",
    "SpatialAttention": "spatial",
    # lesson 07: positions
    "SinusoidalPositionalEmbedding": "positional",
    "LearnedPositionalEmbedding": "positional",
    "RotaryEmbedding": "positional",
    # lesson 08: multi-head attention
    "MultiHeadAttention": "multihead",
    # lesson 09: the Transformer
    "FeedForward": "feedforward",
    "TransformerEncoderBlock": "transformer",
    "TransformerDecoderBlock": "transformer",
    # lessons 09, 13: decoding with a key/value cache
    "CachedMultiHeadAttention": "kv_cache",
    # lesson 09: the encoder-decoder model's embedding (tied output projection)
    "TransformerEmbedding": "transformer_model",
    # lessons 10, 12: sequence classifiers (the padding mask, masked pooling)
    "PaddingMask": "classifier",
    "SequencePooling": "classifier",
    # lesson 12: sentiment analysis (one learned query over the words)
    "AttentionPooling": "attention_pooling",
    # lesson 11: the Vision Transformer
    "PatchEmbedding": "vision",
    "ClassToken": "vision",
    "PatchPositionEmbedding": "vision",
    # lesson 13: efficient attention and scale
    "GroupedQueryAttention": "grouped_query",
}

__all__ = sorted(_HOME)


def __getattr__(name):
    if name not in _HOME:
        raise AttributeError(f"module 'course_lib.layers' has no attribute {name!r}")
    module = importlib.import_module(f"course_lib.{_HOME[name]}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
