"""Real-world input: detector keypoint files (``keypoints``: layouts and the mapping to the 17
Human3.6M joints; ``readers`` and ``detectors``: the file formats, on ``sources``; ``tracking``: stable
person ids), ``predict`` (lift them with a trained run), ``score`` (score predictions made elsewhere)
and ``show`` (render poses). Imports only the core."""
