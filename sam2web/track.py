"""One or more sequences through the SAM2 video predictor (or any stand-in with the same surface).

OWNER: engine helper. Contract:
    track(stack, sequences, prompts, predictor, display, direction="forward", progress=None,
          cancel=None, result=None) -> TrackResult
        progress(seq_i, n_seq, frame_j, n_frames); cancel() -> bool; stops within one frame.
    StandInTracker: deterministic tracker with the predictor surface, for tests.
"""
