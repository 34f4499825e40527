"""The peak FLOP rate from /proc/cpuinfo texts of real CPU kinds, worked out by hand."""
from __future__ import annotations

import pytest

from caffepipe.core.errors import CaffepipeError
from caffepipe.inspection.cpu_peak import parse_cpuinfo, peak_flops

COMMON_FLAGS = "fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36 clflush mmx fxsr sse sse2"


def cpuinfo(vendor: str, family: int, model: int, name: str, mhz: str, flags: str,
            cores: list[tuple[int, int]]) -> str:
    """A /proc/cpuinfo text: one block per logical processor, (physical id, core id) each."""
    blocks = []
    for number, (package, core) in enumerate(cores):
        blocks.append(f"processor\t: {number}\nvendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\n"
                      f"model name\t: {name}\nstepping\t: 6\ncpu MHz\t\t: {mhz}\ncache size\t: 55296 KB\n"
                      f"physical id\t: {package}\nsiblings\t: {len(cores)}\ncore id\t\t: {core}\n"
                      f"flags\t\t: {COMMON_FLAGS} {flags}\nbogomips\t: 5799.99\n")
    return "\n".join(blocks) + "\n"


# An AWS m6i.large: Ice Lake Xeon with AVX-512, its 2 vCPUs are the two hyper-threads of ONE core.
XEON_8375C = cpuinfo("GenuineIntel", 6, 106, "Intel(R) Xeon(R) Platinum 8375C CPU @ 2.90GHz", "2899.970",
                     "ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 avx512f avx512dq avx512cd avx512bw avx512vl",
                     [(0, 0), (0, 0)])
# A Zen 2 EPYC (family 0x17, model 0x31) with AVX2 and no AVX-512, two cores.
EPYC_7B12 = cpuinfo("AuthenticAMD", 23, 49, "AMD EPYC 7B12", "2250.000",
                    "ssse3 fma cx16 sse4_1 sse4_2 avx f16c avx2 sha_ni", [(0, 0), (0, 1)])


def test_intel_avx512_xeon_counts_one_core_for_its_two_hyper_threads() -> None:
    peak = peak_flops(parse_cpuinfo(XEON_8375C), threads=2)
    # 1 core x 2899.97 MHz x 16 floats x 2 flops x 2 FMA units = 185.598 GFLOP/s
    assert peak["cores"] == 1 and peak["physical_cores"] == 1
    assert (peak["vector_floats"], peak["fma_units_per_core"], peak["flops_per_cycle_per_core"]) == (16, 2, 64)
    assert peak["peak_gflops"] == pytest.approx(185.598, abs=1e-3)
    assert peak["clock_source"] == "/proc/cpuinfo cpu MHz"


def test_amd_epyc_with_avx2_has_eight_floats_and_two_fma_units_on_each_of_two_cores() -> None:
    cpu = parse_cpuinfo(EPYC_7B12)
    assert (cpu.vendor, cpu.family, cpu.model, cpu.model_name) == ("AuthenticAMD", 23, 49, "AMD EPYC 7B12")
    # 2 cores x 2250 MHz x 8 floats x 2 flops x 2 FMA units = 144 GFLOP/s; one thread: half
    assert peak_flops(cpu, threads=2)["peak_gflops"] == pytest.approx(144.0)
    assert peak_flops(cpu, threads=1)["peak_gflops"] == pytest.approx(72.0)
    assert "Zen 2" in peak_flops(cpu, threads=2)["fma_units_basis"]


def test_the_max_clock_wins_over_cpu_mhz_and_params_override_the_fma_units() -> None:
    cpu = parse_cpuinfo(XEON_8375C)
    peak = peak_flops(cpu, threads=1, max_mhz=3500.0, fma_units_override=1)
    assert peak["peak_gflops"] == pytest.approx(3500 * 16 * 2 * 1 / 1000)
    assert peak["clock_source"] == "cpufreq cpuinfo_max_freq"
    assert peak["fma_units_basis"] == "params time.fma_units_per_core"


@pytest.mark.parametrize("family,model,flags,per_cycle", [
    (25, 17, "fma avx avx2 avx512f", 32),        # Zen 4: AVX-512 on 256-bit units
    (23, 1, "fma avx avx2", 16),                 # Zen 1: 128-bit units
    (26, 2, "fma avx avx2 avx512f", 64),         # Zen 5: full 512-bit datapaths
    (21, 2, "avx", 16),                          # no FMA flag: a multiply and an add port, 8 lanes
    (16, 4, "", 8),                              # SSE only
])
def test_amd_families_flops_per_cycle(family: int, model: int, flags: str, per_cycle: int) -> None:
    cpu = parse_cpuinfo(cpuinfo("AuthenticAMD", family, model, "AMD", "2000.000", flags, [(0, 0)]))
    assert peak_flops(cpu, threads=1)["flops_per_cycle_per_core"] == per_cycle


def test_without_core_ids_every_processor_counts_as_a_core() -> None:
    text = "".join(f"processor\t: {n}\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 63\n"
                   f"cpu MHz\t\t: 2300.000\nflags\t\t: sse fma avx avx2\n\n" for n in range(4))
    assert parse_cpuinfo(text).physical_cores == 4
    assert peak_flops(parse_cpuinfo(text), threads=8)["cores"] == 4


def test_a_cpuinfo_without_x86_fields_is_an_error_that_says_so() -> None:
    with pytest.raises(CaffepipeError, match="no vendor_id, cpu family, model, cpu MHz, flags line"):
        parse_cpuinfo("processor\t: 0\nBogoMIPS\t: 50.00\nCPU implementer\t: 0x41\n")
    with pytest.raises(CaffepipeError, match="lists no processor"):
        parse_cpuinfo("")
