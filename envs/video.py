"""Record what an agent does as an MP4 or GIF (imageio; MP4 through imageio-ffmpeg)."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from seqrl.errors import SeqrlError, UsageError

VIDEO_SUFFIXES = (".mp4", ".gif")
"""File types :func:`write_video` writes."""


class FrameRecorder(gym.Wrapper):
    """Keeps ``env.render()`` after every reset and step (the env needs ``render_mode="rgb_array"``).

    ``episode_ends[k]`` is the number of frames up to the end of episode ``k``, so frames of an
    episode started by an autoreset after the last wanted one can be dropped.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.frames: list[np.ndarray] = []
        self.episode_ends: list[int] = []

    def _capture(self) -> None:
        try:
            frame = self.env.render()
        except Exception as exc:  # e.g. MuJoCo without an OpenGL context
            name = self.env.spec.id if self.env.spec else "env"
            hint = (
                " (headless MuJoCo: try MUJOCO_GL=egl or MUJOCO_GL=osmesa)"
                if "OpenGL" in str(exc)
                else ""
            )
            reason = textwrap.shorten(str(exc).splitlines()[0] if str(exc) else repr(exc), 160)
            raise SeqrlError(f"cannot render {name}: {reason}{hint}") from None
        self.frames.append(np.asarray(frame, dtype=np.uint8))

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset and keep the first frame."""
        out = self.env.reset(**kwargs)
        self._capture()
        return out

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step and keep the frame; remember where episodes end."""
        out = self.env.step(action)
        self._capture()
        if out[2] or out[3]:
            self.episode_ends.append(len(self.frames))
        return out


def check_video_path(path: str | Path) -> Path:
    """UsageError (one line) unless ``path`` ends in .mp4 / .gif and its folder can be written."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise UsageError(f"--video {path}: use a .mp4 or .gif file name")
    if path.is_dir():
        raise UsageError(f"--video {path}: is a directory")
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UsageError(f"--video {path}: cannot create a file under {ancestor}")
    return path


def write_video(path: str | Path, frames: list[np.ndarray], fps: int = 30) -> Path:
    """Write ``(H, W, 3)`` uint8 frames to ``path`` (.mp4 or .gif), atomically."""
    import imageio.v2 as imageio

    path = check_video_path(path)
    if not frames:
        raise SeqrlError(f"--video {path}: no frames were recorded")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    try:
        if path.suffix.lower() == ".gif":
            imageio.mimwrite(tmp, list[Any](frames), duration=1000 / fps, loop=0)
        else:
            imageio.mimwrite(tmp, list[Any](frames), fps=fps, macro_block_size=1)
        os.replace(tmp, path)
    except OSError as exc:
        raise SeqrlError(f"--video {path}: {exc.strerror or exc}") from None
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
