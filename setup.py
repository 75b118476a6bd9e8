"""Installs the model zoo and transfer benchmark (zoo -> export -> benchmark)."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
    README = f.read()

setup(
    name="loss-transfer-zoo",
    version="0.1.0",
    description=(
        "Model zoo and transfer benchmark for image representations "
        "(Kornblith et al., NeurIPS 2021)."
    ),
    long_description=README,
    long_description_content_type="text/markdown",
    license="Apache-2.0",  # an SPDX expression (no licence classifier: deprecated)
    license_files=["LICENSE"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    python_requires=">=3.10",
    packages=find_packages(include=["zoo*", "export*", "benchmark*", "pipeline*"]),
    include_package_data=True,
    package_data={
        "export": ["catalog.json"],
        "benchmark.data": ["*.json"],
        "benchmark.results": ["leaderboard.csv"],
        "benchmark.report.site_assets": ["*.html", "*.js", "*.css"],
    },
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "keras>=3.15,<4",
        "tensorflow-hub>=0.16.1",
        "tensorflow-datasets>=4.9.10",
        "tensorboard>=2.20,<2.22",
        "matplotlib>=3.8",
        "scikit-learn>=1.5",
        "scipy>=1.11",
        "absl-py>=2.1",
        "numpy>=1.26",
    ],
    extras_require={
        "test": [
            "pytest>=8",
            "pytest-xdist>=3.5",
            "ruff>=0.6",
            "tf-keras>=2.21,<2.22",
            "check-jsonschema>=0.28",
            "selenium>=4.20",
        ],
    },
    entry_points={
        "console_scripts": [
            "zoo-train=zoo.main:run",
            "zoo-export=export.main:run",
            "zoo-benchmark=benchmark.cli.benchmark:run",
            "zoo-analyze=benchmark.cli.analyze:run",
            "zoo-submit=benchmark.cli.submit:run",
            "zoo-leaderboard=benchmark.cli.leaderboard:run",
            "zoo-demo=pipeline.demo_main:run",
            "zoo-matrix=pipeline.matrix_main:run",
            "zoo-pull=export.pull_main:run",
            "zoo-reproduce=pipeline.reproduction_main:run",
        ],
    },
)
