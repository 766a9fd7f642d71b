"""Study recipes (TOML, shipped in ``recipes/``): the thesis's comparison of all-static,
all-dynamic, Hybrid Quantization and searched plans on a model and device.

``mixprec study list`` / ``mixprec study run NAME``; in Python :func:`load_recipe`,
:func:`study_data` and :func:`run_study`.
"""

from mixprec.studies.compare import Row, StudyData, run_study, study_data
from mixprec.studies.recipe import Recipe, load_recipe, recipe_names

__all__ = ["Recipe", "Row", "StudyData", "load_recipe", "recipe_names", "run_study",
           "study_data"]
