"""transformers' own video processors' pixel values for frames already at their planned size, in
a child process (`python -m tests.engines.local.video_pixels_reference < cases.json`).

Each case names a family, the checkpoint's raw video processor settings and an .npz of videos
(uint8 [frames, height, width, 3]); the answer, written to the case's `out` .npz, is what the
family's video processor's own `_preprocess` returns for them, its settings read off the class
defaults and the config as its init would. The frames are not resized (torchvision returns
frames of the size asked for unchanged); rescale, normalisation (tests.torchvision_stand_in),
padding and layout are the reference's code.
"""

from __future__ import annotations

import json
import sys
from typing import Any

import tests.torchvision_stand_in  # noqa: F401  (before the video processor modules)

import numpy as np  # noqa: E402
import torch  # noqa: E402
from transformers.models.glm4v.video_processing_glm4v import Glm4vVideoProcessor  # noqa: E402
from transformers.models.llava_onevision.video_processing_llava_onevision import (  # noqa: E402
    LlavaOnevisionVideoProcessor,
)
from transformers.models.qwen2_vl.video_processing_qwen2_vl import Qwen2VLVideoProcessor  # noqa: E402
from transformers.models.qwen3_vl.video_processing_qwen3_vl import Qwen3VLVideoProcessor  # noqa: E402
from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor  # noqa: E402

CLASSES: dict[str, type] = {
    "qwen2-vl": Qwen2VLVideoProcessor,
    "qwen2.5-vl": Qwen2VLVideoProcessor,
    "qwen3-vl": Qwen3VLVideoProcessor,
    "glm4v": Glm4vVideoProcessor,
    "llava-onevision": LlavaOnevisionVideoProcessor,
    "smolvlm": SmolVLMVideoProcessor,
}
GRID = ("patch_size", "temporal_patch_size", "merge_size")


def reference(case: dict[str, Any]) -> dict[str, np.ndarray]:
    cls = CLASSES[case["family"]]
    video = object.__new__(cls)  # its init checks for torchvision
    for key, value in case["config"].items():
        setattr(video, key, value)
    with np.load(case["videos"]) as stored:
        videos = [torch.from_numpy(stored[name]).permute(0, 3, 1, 2).contiguous() for name in sorted(stored.files)]
    settings: dict[str, Any] = {
        "do_resize": False,
        "size": None,
        "resample": None,
        "do_rescale": video.do_rescale,
        "rescale_factor": video.rescale_factor,
        "do_normalize": video.do_normalize,
        "image_mean": tuple(video.image_mean),
        "image_std": tuple(video.image_std),
        "return_tensors": "pt",
    }
    if case["family"] in ("llava-onevision",):
        settings.update(do_center_crop=False, crop_size=None)
    elif case["family"] == "smolvlm":
        settings.update(do_pad=True)
    else:
        settings.update({key: getattr(video, key) for key in GRID}, cap_pixels_per_frame=False)
    out = video._preprocess(videos=videos, **settings)
    return {name: value.numpy() for name, value in out.items()}


if __name__ == "__main__":
    for case in json.load(sys.stdin):
        np.savez(case["out"], **reference(case))
