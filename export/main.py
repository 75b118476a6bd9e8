"""zoo-export: turn a zoo-train checkpoint into a TF-Hub module.

Example:
  zoo-export --checkpoint=runs/digits_cos --out=runs/modules/digits_cos
The module directory holds the SavedModel, metadata.json and README.md (the
model card); the command prints its sha256.
"""

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "zoo-train --workdir to export.", required=True)
flags.DEFINE_string("out", None, "Module directory to write.", required=True)
flags.DEFINE_string("name", None, "Module name (default arch_objective_seedN).")


def main(argv):
    del argv
    from export.hub_module import export_hub_module
    from zoo.trainer import load_trained_model

    model, objective, info = load_trained_model(FLAGS.checkpoint)
    out_dir, sha = export_hub_module(model, objective, info, FLAGS.out, name=FLAGS.name)
    print(f"module: {out_dir}")
    print(f"sha256: {sha}")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
