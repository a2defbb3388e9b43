"""Degradations: pure operators (:mod:`.ops`, :mod:`.video_ops`), typed sampling
(:mod:`.sample`) and application (:mod:`.pipeline`)."""

from __future__ import annotations

from vidrestore.degrade.pipeline import apply_op, apply_plan, apply_plan_clip, degrade, degrade_clip
from vidrestore.degrade.sample import DegradeConfig, Plan, mild_config, sample_plan

__all__ = ["DegradeConfig", "Plan", "apply_op", "apply_plan", "apply_plan_clip", "degrade", "degrade_clip", "mild_config",
           "sample_plan"]
