# The CPU and OS features behind dlkern's x86-64 ISA levels (see dlkern/_isa.py).
# Built once, with baseline flags, only in portable x86-64 builds: it runs before any
# level is chosen, so it must not use an instruction it is checking for.
#
# The feature lists are the x86-64 psABI's micro-architecture levels (v2, v3, v4),
# which are what GCC's and Clang's -march=x86-64-v3 / -v4 may emit. A CPU that has
# AVX or AVX-512 is not enough: the OS must save the wider registers on a context
# switch, which XCR0 (read with xgetbv, allowed once CPUID says OSXSAVE) reports:
# bits 1-2 for XMM/YMM, bits 5-7 for the opmask and ZMM state.

cdef extern from *:
    """
    #include <cpuid.h>

    static int dlk_bit(unsigned reg, int bit) { return (int)((reg >> bit) & 1u); }

    /* 0 baseline, 3 x86-64-v3, 4 x86-64-v4 (v2 alone gains nothing: no level of its own). */
    static int dlk_isa_probe(void) {
        unsigned a, b, c, d, max_leaf, ext_c = 0;
        if (!__get_cpuid(0, &max_leaf, &b, &c, &d) || max_leaf < 7) return 0;
        __get_cpuid(1, &a, &b, &c, &d);
        const unsigned c1 = c;
        __cpuid_count(7, 0, a, b, c, d);
        const unsigned b7 = b;
        if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) ext_c = c;

        const int v2 = dlk_bit(c1, 0) && dlk_bit(c1, 9) && dlk_bit(c1, 13) &&  /* SSE3 SSSE3 CX16 */
                       dlk_bit(c1, 19) && dlk_bit(c1, 20) && dlk_bit(c1, 23) && /* SSE4.1/4.2 POPCNT */
                       dlk_bit(ext_c, 0);                                       /* LAHF/SAHF */
        if (!v2 || !dlk_bit(c1, 27)) return 0;                                   /* OSXSAVE */
        unsigned xcr0_lo, xcr0_hi;
        __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
        const int os_ymm = (xcr0_lo & 0x6u) == 0x6u;
        const int os_zmm = (xcr0_lo & 0xe6u) == 0xe6u;

        const int v3 = os_ymm && dlk_bit(c1, 28) && dlk_bit(c1, 12) &&          /* AVX FMA */
                       dlk_bit(c1, 22) && dlk_bit(c1, 29) && dlk_bit(c1, 26) && /* MOVBE F16C XSAVE */
                       dlk_bit(b7, 5) && dlk_bit(b7, 3) && dlk_bit(b7, 8) &&    /* AVX2 BMI1 BMI2 */
                       dlk_bit(ext_c, 5);                                       /* LZCNT */
        if (!v3) return 0;
        const int v4 = os_zmm && dlk_bit(b7, 16) && dlk_bit(b7, 17) &&          /* AVX512F DQ */
                       dlk_bit(b7, 28) && dlk_bit(b7, 30) && dlk_bit(b7, 31);   /* CD BW VL */
        return v4 ? 4 : 3;
    }
    """
    int dlk_isa_probe()


def best_level():
    """The highest ISA level ('baseline', 'v3' or 'v4') this CPU and OS can run."""
    return {0: "baseline", 3: "v3", 4: "v4"}[dlk_isa_probe()]
