"""The pure core: torch + PEFT (+ transformers to build models), never Lightning.

Parameter roles (:mod:`~lit_loraplus.core.roles`) from PEFT's layout (:mod:`~lit_loraplus.core.adapters`),
the group settings (:mod:`~lit_loraplus.core.settings`), optimizer groups (:mod:`~lit_loraplus.core.optim`),
schedules (:mod:`~lit_loraplus.core.schedule`), the feature-learning terms
(:mod:`~lit_loraplus.core.feature_terms`), building the LoRA model (:mod:`~lit_loraplus.core.model`) and the
plan of the ``lr``/``ratio="auto"`` search (:mod:`~lit_loraplus.core.search`, :mod:`~lit_loraplus.core.halving`).
"""
