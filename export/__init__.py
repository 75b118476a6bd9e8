"""Export: TF-Hub modules (TF2 Reusable SavedModels), archives, the catalog
and verified downloads.

From Python:

    import export
    folder = export.pull("authors_resnet50_softmax_seed0")  # verified, cached
"""

from zoo import quiet as _quiet

_quiet.install()  # TensorFlow loads silently, whoever imports it


def pull(name, *, cache_dir=None, catalog=None, report=print):
    """Returns the local folder of catalog module `name`, downloaded,
    verified by sha256, scanned and cached (TFHUB_CACHE_DIR by default)
    unless a verified copy is cached already; `catalog` is a catalog file
    (default export/catalog.json or $ZOO_CATALOG)."""
    from export.catalog import pull as pull_entry

    return pull_entry(name, cache_dir=cache_dir, report=report, catalog=catalog)


__all__ = ["pull"]
