"""The teacher a distilling recipe learns from: a finished run directory it names (distill.teacher),
or a run trained first (distill.teacher_base): the recipe itself with that base and distill.teacher_set
applied, its distill, export and tuning sections removed: the teacher is fully fine-tuned whatever
method the student uses (a LoRA student still learns from the best teacher), unless teacher_set sets
tuning.method.

A trained teacher lives in $DOMAINFT_CACHE/teachers/<name>-<base>-<hash>, the hash over the teacher's
recipe, its data files' content and, when the base is a folder, that folder's files' content, so a
rerun, another tuning method or a sweep of the student's distillation settings reuses it (a dataset
unpacked again too), while a base trained again at the same path gets a teacher of its own; a teacher
whose training was interrupted is resumed from its last checkpoint by the next run. The teacher's
train.seed is the student's unless teacher_set says otherwise (train.seed=13 gives every student seed
the same teacher).
"""
from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from domainft.bases import base_fingerprint, file_digest
from domainft.gguf import cache_dir
from domainft.recipe import Recipe
from domainft.rundir import RunDir, run_lock

TEACHERS_DIR = "teachers"


def teacher_recipe(recipe: Recipe) -> Recipe:
    """The recipe of the teacher that distill.teacher_base trains, its output.dir in the cache."""
    teacher = recipe.teacher_recipe()
    return teacher.override({"output.dir": str(teacher_dir(teacher))})


def teacher_dir(teacher: Recipe) -> Path:
    key = hashlib.sha256(json.dumps({"recipe": {k: v for k, v in teacher.to_dict().items() if k != "output"},
                                     "files": _files_fingerprint(teacher),
                                     "bases": [base_fingerprint(name) for name in teacher.base.name]},
                                    sort_keys=True).encode())
    base = re.sub(r"[^\w.-]", "_", Path(teacher.base.name[0]).name)[:40]
    return cache_dir() / TEACHERS_DIR / f"{teacher.name}-{base}-{key.hexdigest()[:16]}"


def _files_fingerprint(recipe: Recipe) -> list:
    """What identifies the teacher's data on disk: every data (and adaptation corpus) file's path,
    size and content (sha256); the files of a folder likewise. By content, not modification time: a
    dataset unpacked again reuses the teacher (an hour of training); one edited in place does not."""
    paths = [recipe.data.path, recipe.data.train, recipe.data.validation, recipe.data.test,
             *recipe.adapt.corpus]
    out = []
    for path in (Path(p) for p in paths if p is not None):
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for f in files:
            try:
                st = f.stat()
            except OSError:  # not on disk (a Hub dataset id): the recipe names it
                out.append([str(f)])
                continue
            out.append([str(f.resolve()), st.st_size, file_digest(f)])
    return out


def teacher_run_dir(recipe: Recipe, run, progress: bool = True, echo=print) -> Path:
    """The finished run directory the student distils from: distill.teacher, or the teacher_base run
    (from the cache, or trained now by `run`, the pipeline's: resumed when an earlier run of it was
    interrupted). `run` is passed in so that this module stays below the pipeline."""
    if recipe.distill.teacher is not None:
        return Path(recipe.distill.teacher)
    teacher = teacher_recipe(recipe)
    with run_lock(teacher.run_dir, wait=True, echo=echo):  # students of one teacher, started at once
        return _trained_teacher(recipe, teacher, run, progress, echo)


def _trained_teacher(recipe: Recipe, teacher: Recipe, run, progress: bool, echo) -> Path:
    run_dir = RunDir(teacher.run_dir)
    if run_dir.is_finished():
        echo(f"distill: teacher {recipe.distill.teacher_base}: cached run {run_dir.path}")
        return run_dir.path
    resume = run_dir.is_started()
    echo(f"distill: training the teacher first ({recipe.distill.teacher_base}"
         + (f", {' '.join(recipe.distill.teacher_set)}" if recipe.distill.teacher_set else "")
         + f") into {run_dir.path}" + (" (resuming it)" if resume else ""))
    run(teacher, resume=resume, progress=progress, echo=echo)
    return run_dir.path
