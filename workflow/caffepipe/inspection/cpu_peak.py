"""The theoretical peak single-precision FLOP rate of the CPU cores a stage runs on, from /proc/cpuinfo.

    peak FLOP/s = cores x clock x floats per vector x 2 (a fused multiply-add is 2 flops) x FMA units per core

`caffepipe time` records it in machine.json so that the report can say what share of it each net reaches; the
report reads that file and never probes the machine it renders on. Each factor, and where it comes from:

- cores: the BLAS threads the stage ran with, at most the physical cores (hyper-threads share a core's FMA
  units, so a second thread on one core adds no peak);
- clock: the highest clock the kernel knows (cpufreq's cpuinfo_max_freq, what `lscpu` shows as "CPU max MHz"),
  else "cpu MHz" from /proc/cpuinfo. Virtual machines usually expose only the latter, often the base clock, so
  a core that boosts beyond it can beat this "peak"; Intel cores that lower their clock under AVX-512 load never
  reach it;
- floats per vector, from the flags: avx512f 16, avx (avx2, fma) 8, otherwise SSE's 4;
- FMA units per core: how many full-width vector multiply-adds a core starts per cycle. The flags do not say;
  this module assumes, by vendor and family:
  - Intel with AVX2 (Haswell and later): 2. Some AVX-512 parts have only one 512-bit FMA unit (Xeon Bronze and
    most Silver, Ice Lake and Tiger Lake client chips): the peak is then twice the truth; set
    `time.fma_units_per_core: 1` for them;
  - AMD Zen 2, Zen 3 (family 0x17 from model 0x30, family 0x19 without AVX-512) and Zen 5 (family 0x1A and
    later, full 512-bit datapaths): 2;
  - AMD Zen 1 (family 0x17 below model 0x30: 128-bit units) and Zen 4 (family 0x19 with AVX-512, run on 256-bit
    units): 1 unit of the flags' width, the same flops per cycle as half-width units would give;
  - anything else (no FMA flag, other vendors): 1. Without FMA, one multiply and one add port per core do the
    same 2 flops per lane per cycle.
  `time.fma_units_per_core` overrides the assumption.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caffepipe.core.errors import CaffepipeError

CPUINFO = Path("/proc/cpuinfo")
MAX_FREQ_KHZ = Path("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")
FLOPS_PER_MULTIPLY_ADD = 2


@dataclass(frozen=True)
class CpuInfo:
    """The facts of /proc/cpuinfo the peak needs (from its first processor; cores from all of them)."""
    model_name: str
    vendor: str               # vendor_id: GenuineIntel, AuthenticAMD, ...
    family: int
    model: int
    mhz: float                # "cpu MHz": the current clock, or a VM's nominal one
    flags: frozenset[str]
    physical_cores: int       # distinct (physical id, core id) pairs; the processor count where those are absent


def parse_cpuinfo(text: str) -> CpuInfo:
    """The CpuInfo of an x86 /proc/cpuinfo text."""
    blocks = [block for block in text.split("\n\n") if block.strip()]
    processors = [dict(_fields(block)) for block in blocks]
    processors = [fields for fields in processors if "processor" in fields]
    if not processors:
        raise CaffepipeError("the CPU description (/proc/cpuinfo) lists no processor")
    first = processors[0]
    missing = [key for key in ("vendor_id", "cpu family", "model", "cpu MHz", "flags") if key not in first]
    if missing:
        raise CaffepipeError(f"the CPU description (/proc/cpuinfo) has no {', '.join(missing)} line; "
                             "the peak FLOP rate is known for x86 CPUs only")
    cores = {(fields.get("physical id"), fields.get("core id")) for fields in processors}
    physical = len(cores) if all("core id" in fields for fields in processors) else len(processors)
    return CpuInfo(model_name=first.get("model name", "unknown"), vendor=first["vendor_id"],
                   family=int(first["cpu family"]), model=int(first["model"]), mhz=float(first["cpu MHz"]),
                   flags=frozenset(first["flags"].split()), physical_cores=physical)


def _fields(block: str) -> list[tuple[str, str]]:
    return [(key.strip(), value.strip()) for key, _, value in
            (line.partition(":") for line in block.splitlines() if ":" in line)]


def vector_floats(flags: frozenset[str]) -> int:
    """Single-precision lanes of the widest vector the flags name."""
    if "avx512f" in flags:
        return 16
    if flags & {"avx", "avx2", "fma"}:
        return 8
    return 4


def fma_units(cpu: CpuInfo) -> tuple[int, str]:
    """Full-width FMA units per core, and the rule that gave it (the module docstring lists the rules)."""
    has_fma = "fma" in cpu.flags
    if cpu.vendor == "GenuineIntel" and has_fma and "avx2" in cpu.flags:
        return 2, "Intel with AVX2 (Haswell or later): 2 FMA units per core"
    if cpu.vendor == "AuthenticAMD" and has_fma:
        if cpu.family == 0x17 and cpu.model < 0x30:
            return 1, "AMD Zen 1 (family 0x17, model below 0x30): 128-bit units, 1 AVX2 FMA per cycle"
        if cpu.family == 0x19 and "avx512f" in cpu.flags:
            return 1, "AMD Zen 4 (family 0x19 with AVX-512 on 256-bit units): 1 AVX-512 FMA per cycle"
        if cpu.family >= 0x17:
            return 2, f"AMD Zen 2 or later (family {cpu.family:#x}): 2 FMA units per core"
    return 1, "no known FMA layout for this CPU: 1 multiply-add per lane per cycle assumed"


def peak_flops(cpu: CpuInfo, threads: int, max_mhz: float | None = None,
               fma_units_override: int | None = None) -> dict[str, Any]:
    """The peak single-precision FLOP rate of `threads` cores, with every factor and where it came from."""
    if threads < 1:
        raise CaffepipeError(f"the peak FLOP rate needs at least one thread, not {threads}")
    cores = min(threads, cpu.physical_cores)
    mhz, clock_source = (max_mhz, "cpufreq cpuinfo_max_freq") if max_mhz else (cpu.mhz, "/proc/cpuinfo cpu MHz")
    units, basis = fma_units(cpu)
    if fma_units_override is not None:
        units, basis = fma_units_override, "params time.fma_units_per_core"
    floats = vector_floats(cpu.flags)
    per_cycle = floats * FLOPS_PER_MULTIPLY_ADD * units
    return {"cpu": cpu.model_name, "vendor": cpu.vendor, "family": cpu.family, "model": cpu.model,
            "threads": threads, "cores": cores, "physical_cores": cpu.physical_cores,
            "clock_mhz": mhz, "clock_source": clock_source,
            "vector_floats": floats, "fma_units_per_core": units, "fma_units_basis": basis,
            "flops_per_cycle_per_core": per_cycle,
            "peak_gflops": cores * mhz * 1e6 * per_cycle / 1e9}


def read_max_mhz(path: Path = MAX_FREQ_KHZ) -> float | None:
    """cpufreq's highest clock in MHz, or None where the kernel exposes none (most virtual machines)."""
    try:
        return int(path.read_text().strip()) / 1000
    except (OSError, ValueError):
        return None


def machine_peak(threads: int, fma_units_override: int | None = None) -> dict[str, Any]:
    """This machine's peak for `threads` cores (reads /proc/cpuinfo and cpufreq)."""
    try:
        text = CPUINFO.read_text()
    except OSError as error:
        raise CaffepipeError(f"cannot read {CPUINFO} for the peak FLOP rate: {error.strerror}") from None
    return peak_flops(parse_cpuinfo(text), threads, read_max_mhz(), fma_units_override)
