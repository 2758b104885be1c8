"""The training pipeline's steps, each runnable on its own as the Azure ML components run them
(`python -m conversion.steps.<step>`, files in and files out); `conversion.pipeline` runs the
same functions in one process for `make train`."""
