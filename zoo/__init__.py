"""The zoo: architectures, objectives, data and the distributed trainer.

From Python:

    import zoo
    model = zoo.create_model("resnet50", objective="cosine_softmax",
                             num_classes=10, image_size=32,
                             width_multiplier=0.125)
    result = zoo.train("digits", workdir="runs/digits_cos",
                       objective="cosine_softmax", epochs=2)
"""

from zoo import quiet as _quiet

_quiet.install()  # TensorFlow loads silently, whoever imports it


def create_model(arch, *, objective="softmax", num_classes, image_size=None,
                 objective_hparams=None, **arch_kwargs):  # fmt: skip
    """Returns a keras.Model from images in [0, 1] to the backbone's named
    endpoints plus "logits": architecture `arch` (zoo.models.ARCHITECTURES,
    with `arch_kwargs` such as width_multiplier) and the head of the
    registered objective `objective` (zoo.objectives.OBJECTIVES, its paper
    defaults updated by `objective_hparams`)."""
    from zoo.models import create_classifier
    from zoo.objectives import create_objective

    head = create_objective(objective, **(objective_hparams or {}))
    return create_classifier(arch, head, num_classes, image_size, **arch_kwargs)


def train(config="digits", *, workdir, objective=None, strategy=None,
          report=print, **overrides):  # fmt: skip
    """Trains one model from a training config (a name in zoo/configs or a
    .py file) into `workdir`, as zoo-train does, and returns the trainer's
    result. `objective` picks the config's settings for that objective;
    `overrides` replace config fields (epochs=2, seed=1, ...); `strategy`
    is a tf.distribute strategy or its zoo-train name ("cpu:2")."""
    from zoo.configs import load_config
    from zoo.distribute import create_strategy
    from zoo.trainer import train_and_evaluate

    loaded = load_config(config)
    if objective:
        loaded = loaded.for_objective(objective)
    loaded = loaded.replace(
        **({"objective": objective} if objective else {}), **overrides
    )
    if isinstance(strategy, str) or strategy is None:
        strategy = create_strategy(strategy or "default")
    return train_and_evaluate(loaded, workdir, strategy=strategy, report=report)


__all__ = ["create_model", "train"]
