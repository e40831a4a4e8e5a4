"""What the GPU backends share: finding an NVIDIA GPU without importing a framework."""

from __future__ import annotations

import shutil
import subprocess


def nvidia_gpus() -> list[str]:
    """Names of the NVIDIA GPUs ``nvidia-smi`` reports; empty when there is none or no driver."""
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        done = subprocess.run(
            [smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return []
    return (
        [line.strip() for line in done.stdout.splitlines() if line.strip()]
        if done.returncode == 0
        else []
    )


def gpu_missing() -> str:
    """Why GPU backends cannot run here, or "" when an NVIDIA GPU is visible."""
    if nvidia_gpus():
        return ""
    if shutil.which("nvidia-smi") is None:
        return "no NVIDIA GPU: nvidia-smi is not installed (no NVIDIA driver on this machine)"
    return "no NVIDIA GPU: nvidia-smi reports none"
