"""Build the optional C accelerator of the claim trie; all metadata lives in pyproject.toml."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "protocol._trie_accel",
            ["protocol/_trie_accel.c"],
            optional=True,
            extra_compile_args=["-O2"],
        )
    ]
)
