"""Which CPU a benchmark ran on: vendor, family/model, microarchitecture and SIMD features.

Cloud VMs often report a bare brand string ("AMD EPYC", "Intel(R) Xeon(R) Processor"), which
does not say whether 512-bit instructions run natively (Intel Sapphire Rapids) or as two 256-bit
halves (AMD Zen 4), or whether AVX-512 exists at all (Zen 3). The family/model numbers from
``/proc/cpuinfo`` do, so every results file records them and a short microarchitecture name
derived from them, and results are filed per CPU (``benches/results/<tag>/``).
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Any

# (vendor, family, first model, last model) -> microarchitecture; ranges from the vendors'
# published family/model tables (AMD family 19h/1Ah, Intel family 6 server parts).
_UARCH = [
    ("AuthenticAMD", 0x17, 0x00, 0x2F, "zen1"),
    ("AuthenticAMD", 0x17, 0x30, 0xFF, "zen2"),
    ("AuthenticAMD", 0x19, 0x00, 0x0F, "zen3"),
    ("AuthenticAMD", 0x19, 0x10, 0x1F, "zen4"),
    ("AuthenticAMD", 0x19, 0x20, 0x5F, "zen3"),
    ("AuthenticAMD", 0x19, 0x60, 0xAF, "zen4"),
    ("AuthenticAMD", 0x1A, 0x00, 0xFF, "zen5"),
    ("GenuineIntel", 6, 0x55, 0x55, "skylake-sp"),
    ("GenuineIntel", 6, 0x6A, 0x6C, "icelake-sp"),
    ("GenuineIntel", 6, 0x8F, 0x8F, "sapphire-rapids"),
    ("GenuineIntel", 6, 0xCF, 0xCF, "emerald-rapids"),
    ("GenuineIntel", 6, 0xAD, 0xAE, "granite-rapids"),
]

_SIMD_FLAGS = (
    "avx2",
    "fma",
    "bmi2",
    "popcnt",
    "avx512f",
    "avx512bw",
    "avx512dq",
    "avx512vl",
    "avx512_vpopcntdq",
    "avx512_vbmi",
    "avx512_vnni",
    "avx512_fp16",
)


def _cpuinfo_first_block(path: str = "/proc/cpuinfo") -> dict[str, str]:
    out: dict[str, str] = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        if not line.strip():
            if out:
                break
            continue
        key, _, val = line.partition(":")
        out.setdefault(key.strip(), val.strip())
    return out


def uarch(vendor: str, family: int, model: int) -> str:
    """Microarchitecture name for a vendor / family / model, or ``"unknown"``."""
    for v, fam, lo, hi, name in _UARCH:
        if v == vendor and fam == family and lo <= model <= hi:
            return name
    return "unknown"


def cpu_info() -> dict[str, Any]:
    """Vendor, brand string, family/model/stepping, microarchitecture and SIMD flags."""
    blk = _cpuinfo_first_block()
    vendor = blk.get("vendor_id", platform.processor() or "unknown")
    family = int(blk.get("cpu family", "0") or 0)
    model = int(blk.get("model", "0") or 0)
    flags = set(blk.get("flags", "").split())
    return {
        "vendor": vendor,
        "model_name": blk.get("model name", platform.processor() or "unknown"),
        "family": family,
        "model": model,
        "stepping": int(blk.get("stepping", "0") or 0),
        "uarch": uarch(vendor, family, model),
        "simd_flags": [f for f in _SIMD_FLAGS if f in flags],
    }


def cpu_tag(info: dict[str, Any] | None = None) -> str:
    """Folder name for results of this CPU, e.g. ``amd-zen3`` or ``intel-sapphire-rapids``."""
    info = info or cpu_info()
    vendor = {"AuthenticAMD": "amd", "GenuineIntel": "intel"}.get(info["vendor"], "cpu")
    name = info["uarch"]
    if name == "unknown":
        name = f"f{info['family']:x}m{info['model']:x}"
    return re.sub(r"[^a-z0-9-]+", "-", f"{vendor}-{name}".lower())


def describe(info: dict[str, Any] | None = None) -> str:
    """One line for a results file header."""
    info = info or cpu_info()
    return (
        f"{info['model_name']} — {info['vendor']} family {info['family']:#x} model "
        f"{info['model']:#x} ({info['uarch']}); SIMD flags: {' '.join(info['simd_flags'])}"
    )
