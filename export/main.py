"""zoo-export: turn a zoo-train checkpoint into a TF-Hub module.

Example:
  zoo-export --checkpoint=runs/digits_cos --out=runs/modules/digits_cos
The module directory holds the SavedModel, metadata.json, README.md (the
model card) and the Kaggle Models metadata (model-metadata.json,
model-instance-metadata.json; owner --kaggle_owner); the command prints its
sha256. With --archive it also writes
<out>.tar.gz, the archive tensorflow_hub's resolver and zoo-pull download, and
prints the archive's sha256 (what a catalog entry pins). --out must be a new
or empty folder, or a module zoo-export wrote before (replaced atomically);
any other folder is refused and left untouched.
"""

from absl import flags

from zoo.cli import run_main

FLAGS = flags.FLAGS
flags.DEFINE_string("checkpoint", None, "zoo-train --workdir to export.", required=True)
flags.DEFINE_string("out", None, "Module directory to write.", required=True)
flags.DEFINE_string("name", None, "Module name (default arch_objective_seedN).")
flags.DEFINE_bool("archive", False, "Also write <out>.tar.gz and print its sha256.")
flags.DEFINE_string(
    "kaggle_owner",
    None,
    "Kaggle user or organisation slug in the Kaggle Models metadata files "
    "(default: Kaggle's placeholder, to replace before uploading).",
)


def main(argv):
    del argv
    import os

    if not os.path.exists(os.path.expanduser(FLAGS.checkpoint)) and "://" not in (
        FLAGS.checkpoint
    ):  # before TensorFlow loads
        raise ValueError(
            f"--checkpoint {FLAGS.checkpoint} not found; pass the --workdir of a "
            "zoo-train run"
        )
    from export.hub_module import check_export_target, export_hub_module
    from zoo.trainer import load_trained_model

    check_export_target(os.path.abspath(FLAGS.out))  # Before any work.
    model, objective, info = load_trained_model(FLAGS.checkpoint)
    out_dir, sha = export_hub_module(
        model,
        objective,
        info,
        FLAGS.out,
        name=FLAGS.name,
        kaggle_owner=FLAGS.kaggle_owner,
    )
    print(f"module: {out_dir}")
    print(f"sha256: {sha}")
    if FLAGS.archive:
        from export.archive import pack_module

        archive = out_dir.rstrip("/") + ".tar.gz"
        print(f"archive: {archive}")
        print(f"archive sha256: {pack_module(out_dir, archive)}")


def run():
    run_main(main)


if __name__ == "__main__":
    run()
