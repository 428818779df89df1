"""domainft: turn a general pretrained encoder into a domain specialist.

    from domainft import Recipe, run, load
    result = run(Recipe.from_yaml("recipes/finance_sentiment.yaml").override({"train.lr": 3e-5}))
    load(result.run_dir).predict(["Operating profit rose to EUR 13.1 mn."])
"""
__version__ = "0.1.0"

from domainft.errors import DomainftError, RecipeError  # noqa: E402
from domainft.model import load  # noqa: E402
from domainft.pipeline import RunResult, run  # noqa: E402
from domainft.recipe import Recipe  # noqa: E402

__all__ = ["DomainftError", "Recipe", "RecipeError", "RunResult", "load", "run", "__version__"]
