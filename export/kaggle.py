"""Kaggle Models publishing metadata, written beside every module's card.

Kaggle Models (the successor of tfhub.dev) describes an upload with two
files, whose fields Kaggle documents (Kaggle/kaggle-api
docs/models_metadata.md):

* model-metadata.json, the model: ownerSlug, title, slug, subtitle,
  isPrivate, description (the model card), publishTime, provenanceSources,
  licenseName;
* model-instance-metadata.json, one variation of it in one framework:
  ownerSlug, modelSlug, instanceSlug, framework ("tensorFlow2" here),
  overview, usage (markdown; ${PATH} and ${URL} are filled in by Kaggle),
  licenseName, fineTunable, trainingData (a list), modelInstanceType,
  baseModelInstance, externalBaseModelUrl.

`kaggle models create -p DIR` and `kaggle models instances create -p DIR`
(or kagglehub.model_upload) publish the module folder with them. The owner is
the export's `--kaggle_owner`; without one the files carry Kaggle's own
placeholder, which the upload refuses until it is replaced. Kaggle creates new
models private; so do these files.
"""

import re

MODEL_FILE = "model-metadata.json"
INSTANCE_FILE = "model-instance-metadata.json"
OWNER_PLACEHOLDER = "INSERT_OWNER_SLUG_HERE"
MODEL_SLUG = "loss-transfer-zoo"
LICENSE = "Apache 2.0"
FRAMEWORKS = (
    "tensorFlow1",
    "tensorFlow2",
    "tfLite",
    "tfJs",
    "pyTorch",
    "jax",
    "coral",
)
LICENSES = (  # the licence names Kaggle documents
    "Apache 2.0",
    "Attribution 3.0 IGO (CC BY 3.0 IGO)",
    "Attribution 3.0 Unported (CC BY 3.0)",
    "Attribution 4.0 International (CC BY 4.0)",
    "Attribution-NoDerivatives 4.0 International (CC BY-ND 4.0)",
    "Attribution-NonCommercial 4.0 International (CC BY-NC 4.0)",
    "Attribution-NonCommercial-NoDerivatives 4.0 International (CC BY-NC-ND 4.0)",
    "Attribution-NonCommercial-ShareAlike 3.0 IGO (CC BY-NC-SA 3.0 IGO)",
    "BSD-3-Clause",
    "CC BY-NC-SA 4.0",
    "CC BY-SA 3.0",
    "CC BY-SA 4.0",
    "CC0: Public Domain",
    "Community Data License Agreement - Permissive - Version 1.0",
    "Community Data License Agreement - Sharing - Version 1.0",
    "GNU Affero General Public License 3.0",
    "GNU Free Documentation License 1.3",
    "GNU Lesser General Public License 3.0",
    "GPL 2",
    "MIT",
    "ODC Attribution License (ODC-By)",
    "ODC Public Domain Dedication and Licence (PDDL)",
    "GPL 3",
)
INSTANCE_TYPES = ("Unspecified", "BaseModel", "KernelVariant", "ExternalVariant")
_SLUG = "^[a-z0-9][a-z0-9-]{1,48}[a-z0-9]$"

# JSON schemas of the documented fields (tests/test_export.py validates the
# written files with them).
MODEL_SCHEMA = {
    "type": "object",
    "required": ["ownerSlug", "title", "slug", "isPrivate", "description"],
    "additionalProperties": False,
    "properties": {
        "ownerSlug": {"type": "string", "minLength": 1},
        "title": {"type": "string", "minLength": 5, "maxLength": 50},
        "slug": {"type": "string", "pattern": _SLUG},
        "subtitle": {"type": "string"},
        "isPrivate": {"type": "boolean"},
        "description": {"type": "string", "minLength": 1},
        "publishTime": {"type": "string"},
        "provenanceSources": {"type": "string"},
        "licenseName": {"enum": list(LICENSES)},
    },
}
INSTANCE_SCHEMA = {
    "type": "object",
    "required": [
        "ownerSlug",
        "modelSlug",
        "instanceSlug",
        "framework",
        "licenseName",
        "fineTunable",
        "trainingData",
    ],
    "additionalProperties": False,
    "properties": {
        "ownerSlug": {"type": "string", "minLength": 1},
        "modelSlug": {"type": "string", "pattern": _SLUG},
        "instanceSlug": {"type": "string", "pattern": _SLUG},
        "framework": {"enum": list(FRAMEWORKS)},
        "overview": {"type": "string"},
        "usage": {"type": "string"},
        "licenseName": {"enum": list(LICENSES)},
        "fineTunable": {"type": "boolean"},
        "trainingData": {"type": "array", "items": {"type": "string"}},
        "modelInstanceType": {"enum": list(INSTANCE_TYPES)},
        "baseModelInstance": {"type": "string"},
        "externalBaseModelUrl": {"type": "string"},
    },
}


def slug(text):
    """Returns `text` as a Kaggle slug: lower-case letters, digits, hyphens."""
    out = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")[:50].strip("-")
    if len(out) < 3:
        raise ValueError(f"cannot make a Kaggle slug of {text!r}")
    return out


def metadata_files(metadata, card, owner=None):
    """Returns {file name: dict} of the two Kaggle files for a module with
    project `metadata` (metadata.json) and model card `card`."""
    owner = owner or OWNER_PLACEHOLDER
    instance = slug(metadata["name"])
    training = metadata.get("dataset") or "unknown"
    model = {
        "ownerSlug": owner,
        "title": "Loss-function transfer zoo",
        "slug": MODEL_SLUG,
        "subtitle": "Image feature vectors trained with different objectives",
        "isPrivate": True,
        "description": card,
        "publishTime": "",
        "provenanceSources": "",
        "licenseName": LICENSE,
    }
    usage = (
        "```python\nimport tensorflow_hub as hub\n"
        'module = hub.load("${URL}")  # or the downloaded folder, ${PATH}\n'
        "features = module(images)  # float32 [batch, height, width, 3] in [0, 1]\n"
        "```\n"
    )
    instance_meta = {
        "ownerSlug": owner,
        "modelSlug": MODEL_SLUG,
        "instanceSlug": instance,
        "framework": "tensorFlow2",
        "overview": (
            f"{metadata.get('arch', 'network')} trained with the "
            f"{metadata.get('objective', 'unknown')} objective on {training}; "
            "a TF2 SavedModel image feature vector."
        ),
        "usage": usage,
        "licenseName": LICENSE,
        "fineTunable": True,
        "trainingData": [str(training)],
        "modelInstanceType": "Unspecified",
        "baseModelInstance": "",
        "externalBaseModelUrl": "",
    }
    return {MODEL_FILE: model, INSTANCE_FILE: instance_meta}
