"""Programs a user runs: pretraining, kNN and linear evaluation, and the main job."""
