from setuptools import find_packages, setup

setup(
    name="keras-albert",
    version="0.1.0",
    description=(
        "Compact BERT-family encoders (ALBERT, BERT, DistilBERT) for Keras 3 / "
        "TensorFlow, with memory-saving training and TF Serving / TF Hub export."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # One installed name: the repository's `training/` and `optimizers/` folders are
    # installed as `keras_albert.training` and `keras_albert.optimizers`.
    packages=find_packages(include=["keras_albert", "keras_albert.*"])
    + ["keras_albert.training", "keras_albert.optimizers"],
    package_dir={
        "keras_albert.training": "training",
        "keras_albert.optimizers": "optimizers",
    },
    install_requires=[
        "tensorflow>=2.21,<2.22",
        "tensorflow-text>=2.21,<2.22",
        "keras>=3.15,<3.16",
        "keras-hub>=0.32,<0.33",
        "safetensors>=0.4",
        # Training: TensorBoard logs (tensorflow no longer pulls it in) and
        # SentencePiece vocabulary training for `keras-albert pretrain` / `demo`.
        "tensorboard>=2.21,<2.22",
        "sentencepiece",
        "huggingface_hub",
        # PredictionLog protos for the warm-up records of serving exports.
        "tensorflow-serving-api>=2.21,<2.22",
        "numpy",
    ],
    extras_require={
        # Parity tests against transformers on PyTorch (CPU). torch is pinned exactly:
        # a looser pin makes pip fetch a multi-GB CUDA build.
        # scipy / scikit-learn are independent references for the metrics tests;
        # tensorflow-datasets for the TFDS loader's offline failure path.
        "tests": ["pytest>=8", "torch==2.13.0", "transformers>=5,<6", "scipy",
                  "scikit-learn", "tensorflow-datasets",
                  # TF-Hub-style reuse tests: hub.KerasLayer inside a tf_keras model.
                  "tensorflow-hub", "tf-keras>=2.21,<2.22", "setuptools<81",
                  # The memory guide's plot (benchmarks/memory_guide.py).
                  "matplotlib",
                  # The import-direction contracts in .importlinter (tests/test_packaging.py).
                  "import-linter>=2.1"],
        # tensorflow-hub 0.16 imports pkg_resources, which setuptools >= 81 dropped.
        "hub": ["tensorflow-hub", "tf-keras>=2.21,<2.22", "setuptools<81"],
        "tfds": ["tensorflow-datasets"],
        "bench": ["matplotlib"],
    },
    entry_points={"console_scripts": ["keras-albert=keras_albert.cli:main"]},
)
