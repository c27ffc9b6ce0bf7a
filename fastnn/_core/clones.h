/* FASTNN_CLONES: compile a loop once per instruction set (AVX-512, AVX2, baseline SSE2)
 * with GCC/Clang `target_clones`; the loader picks the best copy for the CPU (an ifunc),
 * so wheels stay portable (no -march) yet use the widest vectors there are. With
 * -ffp-contract=off (setup.py) every copy rounds identically. `unused`: each header
 * defines more loops than one module calls. */
#ifndef FASTNN_CLONES_H
#define FASTNN_CLONES_H
#if (defined(__x86_64__) || defined(_M_X64)) && defined(__GNUC__) && defined(__linux__)
#define FASTNN_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), unused))
#else
#define FASTNN_CLONES __attribute__((unused))
#endif
#endif
