"""The plugin contract: the hooks a zoo plugin may implement.

A plugin is any module (or object) with functions marked ``@zoo.hookimpl`` whose names are the hooks below.
Third-party plugins are found through the entry-point group ``zoo``::

    # pyproject.toml of the plugin distribution
    [project.entry-points.zoo]
    my_plugin = "my_zoo_plugin"

The host calls each hook once per plugin, the first time the registry is used, and passes a ``register``
callback: the plugin only *declares* what it has, the host decides what to keep. The first registration of a
name wins (built-ins first, then entry-point plugins in name order); a later one is refused with a warning
naming both plugins. The built-in families, datasets and the timm/torchvision bridges register through these
same hooks.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

PROJECT = "zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model builders.

    Args:
        register: call ``register(name, builder, **metadata)`` once per architecture.

            - ``name``: the registry name, lower case, no ``/`` (``"resnet18_cifar"``).
            - ``builder``: a callable returning an ``nn.Module``; it must accept the keywords
              ``num_classes``, ``in_chans`` and ``img_size`` (and should accept ``drop_rate``).
            - ``metadata`` (all optional, all shown by ``zoo.info``): ``family``, ``paper``, ``year``,
              ``input_size`` (the default ``(C, H, W)``), ``num_classes`` (the default), ``tags``
              (strings), ``description`` (one line), ``url``, ``notes`` (how the model adapts, e.g. to small
              inputs), ``num_params`` (the declared parameter count at defaults, checked by ``zoo.testing``),
              ``convert_weights`` (a function mapping a reference implementation's state dict onto this
              model's keys, used by ``zoo.create(name, weights=...)``), ``keywords`` (the keyword names a
              ``**kwargs`` builder accepts: ``zoo.create`` then refuses a misspelt one before building, with the
              nearest valid name; a builder with an explicit signature needs none), ``reported`` (published
              results: a list of ``zoo.specs.Reported`` or of dicts with ``dataset``, ``metric``, ``value`` (a
              finite number) and ``source`` (the paper and its table), e.g. ``{"dataset": "CIFAR-10",
              "metric": "test error %", "value": 8.75, "source": "He et al. 2015, Table 6 (ResNet-20)"}``),
              ``twin`` (the torchvision builder the model equals in parameters and state dict, e.g.
              ``"resnet18"``: ``zoo.info`` then shows the acc@1/acc@5 of its default weights from torchvision's
              metadata, and ``weights=`` takes its weights enum, read from torch's hub cache), ``twin_kwargs``
              (builder keywords those weights imply, set unless given: ``{"transform_input": True}`` for GoogLeNet).

    Returns:
        Nothing; return values are ignored.

    Example::

        @zoo.hookimpl
        def register_models(register):
            register("resnet18_cifar", resnet18_cifar, family="resnet", paper="Deep Residual Learning for "
                     "Image Recognition", year=2015, input_size=(3, 32, 32), num_classes=10)
    """


@hookspec
def register_model_sources(register: Callable[..., None]) -> None:
    """Register a catalogue of models that is only enumerated when asked for (a bridge to another library).

    A source owns every name under its prefix (``"timm"`` owns ``"timm/resnet18"``), so names from two sources
    cannot clash. Nothing of the source is imported until one of its names is listed or created.

    Args:
        register: call ``register(prefix, list_names, get_model, **metadata)``.

            - ``prefix``: the source name, e.g. ``"timm"``.
            - ``list_names()``: returns the model names of the source, without the prefix.
            - ``get_model(name)``: returns ``(builder, metadata)`` for one name (same meaning as in
              ``register_models``), or raises ``KeyError`` if the source has no such model.
            - ``metadata`` (optional): ``description``, ``url``.

    Returns:
        Nothing; return values are ignored.
    """


@hookspec
def register_datasets(register: Callable[..., None]) -> None:
    """Register datasets.

    Args:
        register: call ``register(name, loader, **metadata)`` once per dataset.

            - ``name``: the dataset name (``"fashion-mnist"``).
            - ``loader``: a callable ``loader(root=None, **options)`` returning a ``zoo.data.Dataset``
              (train and test splits of uint8 images plus ``num_classes``, ``in_chans``, ``img_size``).
            - ``metadata`` (optional): ``num_classes``, ``input_size`` ``(C, H, W)``, ``description``,
              ``url``, ``tags``.

    Returns:
        Nothing; return values are ignored.

    Example::

        @zoo.hookimpl
        def register_datasets(register):
            register("my-shapes", load_my_shapes, num_classes=4, input_size=(1, 32, 32))
    """


@hookspec
def register_weights(register: Callable[..., None]) -> None:
    """Register pretrained weights under a tag of a model (``"resnet20.digits"``), the plugin's own or any other.

    Called once every plugin's models are registered, so a plugin may tag the built-ins and other plugins' models.
    Users then write ``zoo.create("resnet20.digits")`` or ``zoo.create("resnet20", weights="digits")``; the tags
    are listed by ``zoo.list_models(pretrained=True)``, ``zoo list --pretrained`` and the model's card, and
    ``zoo.testing.check_architecture`` checks that each one loads.

    Args:
        register: call ``register(model, tag, **fields)`` once per set of weights.

            - ``model``: the registry name of the model the weights load into.
            - ``tag``: lower-case letters, digits, ``_`` and ``-`` (``"fashion_mnist"``).
            - ``file`` (required): the file name inside ``package``, or a URL (fetched only with ``download=True``,
              into zoo's cache). ``.safetensors`` is read as such; anything else with ``weights_only=True``.
            - ``sha256`` (required): the file's sha256 in hex; every file, shipped, cached or downloaded, is checked.
            - ``inputs`` (required): the input record, a dict with ``input_size`` and, as known, ``input_dtype``,
              ``mean``, ``std`` (per channel, in [0, 1] units), ``interpolation``, ``resize_size``,
              ``crop_size``, ``classes``, ``num_classes``, ``task``, ``loss``, ``dataset``, ``hflip``: how
              ``zoo.predict`` and ``zoo.evaluate`` prepare inputs for these weights.
            - ``package``: the Python package that ships ``file`` as package data (required for a file name).
            - ``size`` (bytes), ``classes``, ``metrics`` (``{"top1": 91.2, "split": "test"}``), ``dataset``,
              ``licence``, ``recipe`` (the command that produced the weights), ``kwargs`` (builder keywords the
              weights need, e.g. ``{"in_chans": 1}``; the user's own keywords win).

            zoo records the registering plugin as the weights' source. A tag registered twice, or one for an
            unknown model, is refused with a warning naming both plugins (or the model); the first one is kept.

    Returns:
        Nothing; return values are ignored.

    Example::

        @zoo.hookimpl
        def register_weights(register):
            register("resnet20", "digits", file="resnet20_digits.safetensors", package="zoo_resnet",
                     sha256="9f86d0...", size=1_100_000, inputs={"input_size": [1, 32, 32], "input_dtype": "uint8",
                     "mean": [0.31], "std": [0.32], "num_classes": 10}, metrics={"top1": 97.5, "split": "test"},
                     dataset="digits", licence="MIT", recipe="python make_weights.py", kwargs={"in_chans": 1})

    A runnable example is in ``docs/pretrained.md``.
    """
