"""Multimodal QA through lmms-eval (`vlascore qa`, docs/qa.md): the paper's eight benchmarks asked of a model's VLM
side, scored by lmms-eval's own task code, stored in the run directory next to the simulated results."""

LMMS_EVAL_VERSION = "0.7.3"
"""The lmms-eval release the overlay tasks were checked against (scripts/setup.sh installs it, without its
dependencies: they include torchvision, which has no CPU build on PyPI and is not needed here)."""
LMMS_EVAL_INSTALL = f"pip install 'vlascore[qa]' && pip install --no-deps lmms-eval=={LMMS_EVAL_VERSION}"
MMVET_GRADER_MODEL = "gpt-4o-2024-11-20"
"""MM-Vet's grader by default: the GPT-4o its authors' evaluator calls."""
