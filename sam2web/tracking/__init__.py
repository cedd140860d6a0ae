"""The only package that imports torch and sam2: checkpoints, the predictor, the run over a sequence.

model.py      registry, checkpoints, device, ``load_predictor``/``describe``
predictor.py  ``SAM2WebPredictor``: SAM2's video predictor subclass (frame sources, feature LRU,
              batched objects), chosen by the hydra ``_target_`` override
precision.py  ``--precision auto``: CPU flags + a cached micro-benchmark, agreement bounds; the same
              one-off check picks the CPU levers
accel.py      CPU levers (absorbed value projection, bf16-held weights, inductor compile)
track.py      ``track``/``TrackSession`` over sequences, ``LazyFrames``, memory trimming
standin.py    ``StandInTracker`` for tests (no torch)
sam2_patches.py  CPU fixes for sam2 1.1.0 and the frame-source hook of ``init_state``
"""
