"""SAM2 model registry, checkpoint lookup/download/verification, device and precision, CPU fixes.

OWNER: engine helper. Contract:
    MODELS: dict size -> (config name, checkpoint file name); DEFAULT_MODEL = "small"
    find_checkpoint(size, explicit=None) -> Path | None
    download_checkpoint(size, progress=None) -> Path
    pick_device(name="auto") -> str
    load_predictor(size="small", checkpoint=None, device="auto", image_size=None, precision="auto") -> Predictor
        (UserError with what to do when no checkpoint; SAM2WEB_RANDOM_WEIGHTS=1 -> random weights)
"""
