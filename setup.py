from pathlib import Path

from setuptools import find_packages, setup

ONNX = ["onnx>=1.12", "onnxruntime>=1.13"]   # the first releases with opset 17 (onnx_backend.OPSET)

setup(
    name="gan_colorize",
    version="0.1.0",
    description="Partial, spatially controlled colorization with a mask-conditioned GAN",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["gan_colorize", "gan_colorize.*"]),
    # the default checkpoint of `gan-colorize` and Colorizer.from_checkpoint(), in wheels too
    # and the list of Flowers102 images that repeat Flowers17 ones (kept out of training)
    package_data={"gan_colorize": ["checkpoints/default.pt", "data/lists/*.txt"]},
    install_requires=[
        "torch>=2.3,<2.15",
        "torchvision>=0.18,<0.30",
        "numpy>=1.24",
        "scikit-image>=0.22",
        "tensorboard>=2.14",
        "albumentations>=2.0,<3",
        "pyyaml>=6",
        "tqdm>=4.60",
        "pillow>=10",
    ],
    extras_require={
        # onnx: export-onnx and `gan-colorize --backend onnx`
        "onnx": ONNX,
        "test": ["pytest>=7", "hypothesis>=6", "pytest-timeout>=2.1"],
        # the web demo (gan-colorize-demo); the core package never imports it
        "demo": ["gradio>=6,<7"],
    },
    entry_points={
        "console_scripts": [
            "gan-colorize=gan_colorize.apps.colorize_cli:main",
            "gan-colorize-train=gan_colorize.apps.train_cli:train_main",
            "gan-colorize-evaluate=gan_colorize.apps.evaluate_cli:main",
            "gan-colorize-masks=gan_colorize.data.masks:main",
            "gan-colorize-demo=gan_colorize.apps.demo:main",
            "gan-colorize-benchmark=gan_colorize.apps.benchmark_cli:main",
        ]
    },
)
