"""domainft: turn a general pretrained encoder into a domain specialist.

    from domainft import Recipe, run, load
    result = run(Recipe.from_yaml("recipes/finance_sentiment.yaml").override({"train.lr": 3e-5}))
    load(result.run_dir).predict(["Operating profit rose to EUR 13.1 mn."])
"""
__version__ = "0.1.0"

from domainft.errors import DomainftError, RecipeError  # noqa: E402
from domainft.quiet import silence_foreign_noise  # noqa: E402

silence_foreign_noise()

# Imported on first use: `domainft.serving` must import without torch or transformers.
_LAZY = {"load": "domainft.model", "run": "domainft.pipeline", "RunResult": "domainft.pipeline",
         "Recipe": "domainft.recipe"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'domainft' has no attribute {name!r}")


__all__ = ["DomainftError", "Recipe", "RecipeError", "RunResult", "load", "run", "__version__"]
