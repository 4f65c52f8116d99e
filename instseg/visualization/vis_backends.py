"""mmengine's MLflow backend, with drawn images logged as PNG artifacts that keep every step."""

from __future__ import annotations

import numpy as np
from mmengine.visualization import MLflowVisBackend as _MMEngineMLflowVisBackend
from mmengine.visualization.vis_backend import force_init_env

from instseg.registry import VISBACKENDS


@VISBACKENDS.register_module(name='MLflowVisBackend')
class MLflowVisBackend(_MMEngineMLflowVisBackend):
    """``MLflowVisBackend`` whose ``add_image`` writes ``images/<name>_<step>.png``.

    mmengine's passes the image name (``'val_img'``) as the artifact file, which MLflow refuses
    for want of an extension, and would overwrite one file at every step.
    """

    @force_init_env
    def add_image(self, name: str, image: np.ndarray, step: int = 0, **kwargs) -> None:
        """Log an RGB uint8 image [H, W, 3] as ``images/<name>_<step>.png``."""
        self._mlflow.log_image(image, f'images/{name}_{step}.png')
