"""instseg's Runner: mmengine's, with atomic checkpoint writes."""

from __future__ import annotations

import os.path as osp

from mmengine.runner import Runner as MMEngineRunner

from instseg.engine.checkpoint import save_atomically
from instseg.registry import RUNNERS


@RUNNERS.register_module()
class Runner(MMEngineRunner):
    """mmengine's Runner whose checkpoints appear only when completely written."""

    def save_checkpoint(self, out_dir: str, filename: str, *args, **kwargs) -> None:
        if '://' in str(out_dir):  # remote storage: leave it to the backend
            return super().save_checkpoint(out_dir, filename, *args, **kwargs)
        final = osp.join(out_dir, filename)

        def write(tmp_path: str) -> None:
            super(Runner, self).save_checkpoint(
                osp.dirname(tmp_path), osp.basename(tmp_path), *args, **kwargs
            )

        save_atomically(write, final)
