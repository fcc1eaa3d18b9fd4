"""Training-side pieces of the DualVLA method that plug into a user's fine-tuning loop.

`vlascore.training.distill` holds the dual-teacher adaptive distillation loss (needs torch; import it from there).
See docs/dualvla_data.md.
"""
