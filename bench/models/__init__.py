"""Models the training-step benchmark builds, on meta and on the CPU (bench.step_accuracy)."""
